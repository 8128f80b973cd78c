// The 1:1 load shared by our scenario and ejabberd's: pairs of clients, each sender keeping a window of sends in
// flight (optionally paced), and the send→deliver latency of every message matched by its id.
import { randomUUID } from "node:crypto";
import type * as hdr from "hdr-histogram-js";
import type { Row } from "./options.js";
import { latencyHistogram } from "./report.js";

/** Send→deliver latency by message id: each send is stamped, its first delivery recorded. */
export class Deliveries {
  private sentAt = new Map<string, bigint>();
  private histogram: hdr.Histogram = latencyHistogram();
  count = 0;
  /** Sends refused or timed out (an overloaded system answers DeadlineExceeded); they are not retried. */
  failed = 0;

  sent(id: string): void {
    this.sentAt.set(id, process.hrtime.bigint());
  }

  /** A delivery of a message this load sent (others are ignored). */
  delivered(id: string): void {
    const t0 = this.sentAt.get(id);
    if (t0 === undefined) return;
    this.sentAt.delete(id);
    this.histogram.recordValue(Number(process.hrtime.bigint() - t0) / 1000);
    this.count++;
  }

  reset(): void {
    this.histogram.destroy();
    this.histogram = latencyHistogram();
    this.sentAt.clear();
    this.count = 0;
    this.failed = 0;
  }

  /** Delivered messages per second over `seconds`, and the latency percentiles in ms. */
  row(seconds: number): Row & { "msgs/s": number; "p99 ms": string } {
    const ms = (p: number) => (this.histogram.getValueAtPercentile(p) / 1000).toFixed(1);
    return { "msgs/s": Math.round(this.count / seconds), "p50 ms": ms(50), "p99 ms": ms(99), "p999 ms": ms(99.9), "failed sends": this.failed };
  }

  close(): void {
    this.histogram.destroy();
  }
}

/**
 * Each of `pairs` senders keeps `window` sends in flight for `seconds` (paced to `ratePerSender` messages/s when
 * given, spread evenly), then waits 300 ms for the last deliveries; resolves with the measured interval in hrtime ns.
 */
export async function drivePairs(
  options: { pairs: number; window: number; seconds: number },
  deliveries: Deliveries,
  send: (pair: number, id: string) => Promise<unknown>,
  ratePerSender?: number,
): Promise<{ started: bigint; finished: bigint; seconds: number }> {
  deliveries.reset();
  const end = Date.now() + options.seconds * 1000;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: options.pairs }, (_, p) =>
      Promise.all(
        Array.from({ length: options.window }, async () => {
          // Paced slots start at random points of their period, so the load is even instead of bursts of every slot.
          if (ratePerSender !== undefined) await new Promise((r) => setTimeout(r, Math.random() * ((options.window * 1000) / ratePerSender)));
          while (Date.now() < end) {
            const id = randomUUID();
            deliveries.sent(id);
            const t = Date.now();
            await send(p, id).catch(() => void deliveries.failed++);
            if (ratePerSender !== undefined) await new Promise((r) => setTimeout(r, Math.max(0, (options.window * 1000) / ratePerSender - (Date.now() - t))));
          }
        }),
      ),
    ),
  );
  await new Promise((r) => setTimeout(r, 300));
  const finished = process.hrtime.bigint();
  return { started, finished, seconds: Number(finished - started) / 1e9 };
}
