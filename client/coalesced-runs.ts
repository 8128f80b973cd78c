// Coalescing without losing requests: work that is already running may have read its input before the reason for
// a new request existed, so a request made meanwhile is not dropped but queues one more run after it.

interface Slot {
  work: () => Promise<void>;
  /** The run queued behind the current one, shared by every request made while the current one runs. */
  next: { promise: Promise<void>; resolve(): void; reject(err: unknown): void } | undefined;
}

/**
 * Runs work one at a time per key; requests made while a run is in flight share a single follow-up run, so a storm
 * of requests costs at most two runs, and the last request is always served by a run that started after it.
 */
export class CoalescedRuns<K> {
  private readonly slots = new Map<K, Slot>();

  /** Resolves when a run that started after this request has finished (rejects with that run's error). */
  request(key: K, work: () => Promise<void>): Promise<void> {
    const slot = this.slots.get(key);
    if (slot !== undefined) {
      slot.work = work;
      if (slot.next === undefined) {
        let resolve!: () => void;
        let reject!: (err: unknown) => void;
        const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
        slot.next = { promise, resolve, reject };
      }
      return slot.next.promise;
    }
    const fresh: Slot = { work, next: undefined };
    this.slots.set(key, fresh);
    const first = run(work);
    void this.drain(key, fresh, first);
    return first;
  }

  private async drain(key: K, slot: Slot, current: Promise<void>): Promise<void> {
    for (;;) {
      await current.catch(() => {});
      const next = slot.next;
      if (next === undefined) {
        this.slots.delete(key);
        return;
      }
      slot.next = undefined;
      current = run(slot.work);
      current.then(next.resolve, next.reject);
    }
  }
}

/** Starts work, turning a synchronous throw into a rejection. */
function run(work: () => Promise<void>): Promise<void> {
  try {
    return work();
  } catch (err) {
    return Promise.reject(err);
  }
}
