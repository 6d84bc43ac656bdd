/**
 * Every error a user can see carries a stable code (for scripts and support tickets), the HTTP status
 * an API maps it to, and a message an operator can act on. Codes are never renamed once released.
 */
export class FleetError extends Error {
  readonly code: string;
  readonly httpStatus: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: { httpStatus?: number; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FleetError';
    this.code = code;
    this.httpStatus = options.httpStatus ?? 500;
    this.details = options.details;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export function isFleetError(err: unknown, code?: string): err is FleetError {
  return err instanceof FleetError && (code === undefined || err.code === code);
}

/** RFC 9562 text form: ids the database stores as uuid. A looser check lets PostgreSQL's cast fail with a 500. */
export function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}
