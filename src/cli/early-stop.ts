// SIGTERM/SIGINT during start-up. As PID 1 of its PID namespace (a container
// without an init: the image's ENTRYPOINT is node, and a Kubernetes pod
// without shareProcessNamespace), the kernel drops every signal a process has
// no handler for, SIGTERM included: a stop asked for while `run` still loads
// its modules would be lost until the SIGKILL. Until `run` installs its own
// handlers, one of these exits at once (nothing is open yet).
const exitNow = (): void => process.exit(0);

export function holdStopSignals(): void {
  process.on('SIGTERM', exitNow);
  process.on('SIGINT', exitNow);
}

/** `run` handles SIGTERM/SIGINT itself from now on (or hands them to a relaunched process). */
export function releaseStopSignals(): void {
  process.off('SIGTERM', exitNow);
  process.off('SIGINT', exitNow);
}
