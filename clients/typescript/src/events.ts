// Messages of the progress WebSocket: `progress`..., then `completed` or `error`.

import type { components } from "./schema.js";

export type JobResult = components["schemas"]["JobResult"];

/** The item that moved, carried by a `progress` message (a ragcast extension). */
export interface ItemUpdate {
  index: number;
  content_id: string;
  title: string | null;
  status: string;
  stage: string;
  error: string | null;
}

/** The contract's progress update (note the camelCase `contentProcessed`). */
export interface ProgressEvent {
  type: "progress";
  job_id: string;
  progress: number;
  stage: string;
  contentProcessed: number;
  embeddings: number;
  status: string;
  total_content?: number;
  item?: ItemUpdate;
}

/** The terminal message of a completed job. */
export interface CompletedEvent {
  type: "completed";
  job_id: string;
  progress: number;
  stage: string;
  status?: string;
  result: JobResult;
}

/** The terminal message of a failed or cancelled job. */
export interface ErrorEvent {
  type: "error";
  job_id: string;
  message: string;
  status?: string;
  result?: JobResult;
}

export type ProgressMessage = ProgressEvent | CompletedEvent | ErrorEvent;

/** Whether a message is the last one of its socket. */
export function isTerminal(message: ProgressMessage): message is CompletedEvent | ErrorEvent {
  return message.type === "completed" || message.type === "error";
}
