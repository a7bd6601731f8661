// Typed errors carrying the contract's error body: {success, error, message, details?,
// retry_after?, request_id?}.

import type { components } from "./schema.js";

export type ErrorBody = components["schemas"]["ErrorBody"];
export type ErrorDetails = components["schemas"]["ErrorDetails"];

/** The server answered with an error (status 0: it could not be reached at all). */
export class ApiError extends Error {
  readonly status: number;
  readonly body: ErrorBody;
  readonly code: string;
  /** Seconds the server asked to wait (`Retry-After`, or the body's `retry_after`). */
  readonly retryAfter: number | null;

  constructor(status: number, body: ErrorBody, retryAfter: number | null = null) {
    super(body.message || `HTTP ${status}`);
    this.name = new.target.name;
    this.status = status;
    this.body = body;
    this.code = body.error || "http_error";
    this.retryAfter = body.retry_after ?? retryAfter;
  }

  /** The server's request id, to quote in a bug report. */
  get requestId(): string | null {
    return this.body.request_id ?? null;
  }

  /** Whether trying again later may succeed: 408, 429, 5xx or no answer. */
  get transient(): boolean {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/** 400: `details` names the field at fault and the issue. */
export class ValidationError extends ApiError {
  get details(): ErrorDetails | null {
    return this.body.details ?? null;
  }
}

/** 401/403: a missing, unknown or revoked key, or one that may not do this. */
export class AuthError extends ApiError {}

/** 404: no such job or export for this key's user. */
export class NotFoundError extends ApiError {}

/** 409: the request clashes with an object's state (a reused job id, a finished job). */
export class ConflictError extends ApiError {}

/** 429: `retryAfter` says how many seconds to wait. */
export class RateLimitError extends ApiError {}

/** The server could not be reached (after the retries). */
export class ConnectionError extends ApiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(0, { success: false, error: "connection_error", message });
    if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }
}

const CLASSES: Record<number, typeof ApiError> = {
  400: ValidationError,
  401: AuthError,
  403: AuthError,
  404: NotFoundError,
  409: ConflictError,
  429: RateLimitError,
};

/** Seconds from a `Retry-After` header: delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (value == null || value.trim() === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, (when - now) / 1000);
}

/** The ApiError subclass for an error answer's status, body text and Retry-After. */
export function errorFrom(status: number, text: string, retryAfterHeader: string | null, reason = ""): ApiError {
  let body: ErrorBody | null = null;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed as ErrorBody;
  } catch {
    body = null;
  }
  body ??= { success: false, error: "http_error", message: text.trim().slice(0, 500) || reason || `HTTP ${status}` };
  const Kind = CLASSES[status] ?? ApiError;
  return new Kind(status, body, parseRetryAfter(retryAfterHeader));
}

/** The ApiError of a fetch Response that is not ok. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  return errorFrom(response.status, text, response.headers.get("retry-after"), response.statusText);
}
