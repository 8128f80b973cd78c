/**
 * Wraps an async iterable so each step runs through `around` (a scope or a try/catch), because Connect drives
 * a streaming handler's generator after the interceptors have returned.
 */
export function wrapIterable<T>(
  source: AsyncIterable<T>,
  around: (step: () => Promise<IteratorResult<T>>) => Promise<IteratorResult<T>>,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const inner = source[Symbol.asyncIterator]();
      return {
        next: () => around(() => inner.next()),
        return: (value?: unknown) =>
          around(() => (inner.return ? inner.return(value) : Promise.resolve({ done: true, value: undefined as T }))),
        throw: (err?: unknown) => around(() => (inner.throw ? inner.throw(err) : Promise.reject(err))),
      };
    },
  };
}
