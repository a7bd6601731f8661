// The contract's "Retry Logic": exponential backoff (1 s, 2 s, 4 s) for transient errors,
// honouring Retry-After, bounded in tries and in how long one wait may be.

import type { ApiError } from "./errors.js";

export interface RetryOptions {
  /** Retries after the first try (default 3). */
  maxRetries?: number;
  /** First backoff in milliseconds; it doubles each retry (default 1000). */
  backoffMs?: number;
  /** Longest backoff in milliseconds (default 30000). */
  maxBackoffMs?: number;
  /** A Retry-After longer than this is not waited out: the error is thrown (default 60000). */
  maxRetryWaitMs?: number;
}

export const DEFAULT_RETRY: Required<RetryOptions> = {
  maxRetries: 3,
  backoffMs: 1000,
  maxBackoffMs: 30_000,
  maxRetryWaitMs: 60_000,
};

/** Milliseconds to wait before retry `attempt + 1` (0-based), or null to give up. */
export function retryDelay(attempt: number, error: ApiError, options: RetryOptions = {}): number | null {
  const o = { ...DEFAULT_RETRY, ...options };
  if (attempt >= o.maxRetries || !error.transient) return null;
  if (error.retryAfter != null) {
    // Waiting less than the server asked would only earn another refusal.
    const wait = error.retryAfter * 1000;
    return wait <= o.maxRetryWaitMs ? wait : null;
  }
  return Math.min(o.backoffMs * 2 ** attempt, o.maxBackoffMs);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
