export const USAGE = `pg-prefaulter: reads a PostgreSQL follower's WAL ahead of replay and
prefaults the pages replay will touch, so the single replay process hits the
page cache instead of waiting on storage.

Usage:
  pg-prefaulter <command> [options]

Commands:
  run       Prefault for the local follower (the sidecar)
  status    Show a running agent's state (from its HTTP endpoint)
  decode    Decode WAL segment files or a pg_wal directory
  demo      Start an embedded primary and standby and show the agent at work
  version   Print the version

Run "pg-prefaulter <command> --help" for a command's options.
`;
