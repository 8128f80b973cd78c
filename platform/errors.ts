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
