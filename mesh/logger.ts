import { pino } from "pino";
import type { DestinationStream, Logger } from "pino";
import type { LogLevel } from "../platform/config.js";
import { currentScope } from "./call-scope.js";

/** Fields that may carry credentials; pino replaces them so secrets never reach a log line. */
const redactPaths = [
  "password",
  "*.password",
  "token",
  "*.token",
  "accessToken",
  "*.accessToken",
  "refreshToken",
  "*.refreshToken",
  "authorization",
  "*.authorization",
  'headers["authorization"]',
];

/**
 * The JSON logger of one process: every line carries the service name and, inside a call, that call's request id
 * (read from the call scope, so handlers need not pass it along); credentials are redacted.
 */
export function createLogger(service: string, level: LogLevel = "info", destination?: DestinationStream): Logger {
  return pino(
    {
      name: service,
      level,
      base: { service },
      redact: { paths: redactPaths, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      mixin: () => {
        const requestId = currentScope()?.requestId;
        return requestId === undefined ? {} : { requestId };
      },
    },
    destination,
  );
}
