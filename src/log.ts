import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout, one logger per daemon; components take children with their own bindings. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'sandboxd' } });
}
