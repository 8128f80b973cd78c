import { pino } from "pino";
import type { Logger } from "pino";
import type { LogLevel } from "../platform/config.js";

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

/** The JSON logger of one process; every line carries the service name, and credentials are redacted. */
export function createLogger(service: string, level: LogLevel = "info"): Logger {
  return pino({
    name: service,
    level,
    base: { service },
    redact: { paths: redactPaths, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
