/** The infrastructure components behind the ports, named in errors so operators know what to look at. */
export type Component = "etcd" | "mysql" | "redis" | "kafka" | "memory";

/**
 * A dependency could not be reached or did not answer in time. Adapters throw it for lost connections and
 * time-outs so callers can map it to Code.Unavailable (and retry idempotent work) without knowing the driver.
 */
export class UnavailableError extends Error {
  constructor(
    readonly component: Component,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${component} unavailable: ${message}`, options);
    this.name = "UnavailableError";
  }
}

/** A write refused because a unique value is taken (a username, an email, an API key); callers answer AlreadyExists. */
export class ConflictError extends Error {
  constructor(
    /** The field whose value is taken, e.g. "username". */
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = "ConflictError";
  }
}
