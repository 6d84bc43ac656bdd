/**
 * What a drill process tells the process that started it (the issuer API's drill launcher) over the IPC
 * channel it was given: it holds the drill lock and runs, or it was refused and why (drills
 * one-drill-at-a-time.ts says it, issuer-api drill-launcher.ts reads it).
 */
export type DrillStartMessage = { readonly drill: 'started'; readonly pid: number } | { readonly drill: 'refused'; readonly code: string; readonly message: string; readonly httpStatus: number };
