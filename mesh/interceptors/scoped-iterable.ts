import { withScope, type CallScope } from "../call-scope.js";

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

/**
 * Runs only the first step of a stream's iterator inside `scope` (see createScopeInterceptor): the handler's setup
 * happens there, and every later step goes straight to the source iterator.
 */
export function scopeFirstStep<T>(source: AsyncIterable<T>, scope: CallScope): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const inner = source[Symbol.asyncIterator]();
      let started = false;
      return {
        next: (value?: unknown) => {
          if (started) return inner.next(value as never);
          started = true;
          return withScope(scope, () => inner.next(value as never));
        },
        return: (value?: unknown) => (inner.return ? inner.return(value as never) : Promise.resolve({ done: true, value: undefined as T })),
        throw: (err?: unknown) => (inner.throw ? inner.throw(err) : Promise.reject(err)),
      };
    },
  };
}
