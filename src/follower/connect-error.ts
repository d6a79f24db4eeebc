// The follower refused or failed a connection; its own module so the agent can
// test for it without loading the SQL client (start-up time, issue #15).
export class FollowerConnectError extends Error {
  readonly code: string | undefined;
  readonly startingUp: boolean;
  constructor(msg: string, code: string | undefined) {
    super(msg);
    this.name = 'FollowerConnectError';
    this.code = code;
    this.startingUp = code === '57P03';
  }
}
