/**
 * One background job of the CA (Boulder's daemons: CRL publisher, OCSP pre-producer, audit sealer,
 * reconcilers). A job is one pass, run again and again by a daemon runner that owns the timing, the
 * leader check (only the active site's leader passes), stopping and metrics; the job itself knows none
 * of that. Several instances may run at once (two processes, a restart overlapping the old one): a
 * pass must be safe to run twice.
 */
export interface DaemonJob {
  /** kebab-case, stable: metrics label and `--only` name, e.g. 'crl-publisher'. */
  readonly name: string;
  /** The pause between passes. */
  readonly everyMs: number;
  /** One pass; true when a backlog remains (the runner goes again at once, without the pause). */
  pass(): Promise<boolean>;
}
