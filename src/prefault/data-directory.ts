// A sanity check before prefaulting: the data directory the follower reports
// (or the configured one) must be visible to this process and hold the same
// major version, or every read would quietly count as a missing file.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Throws a message saying what to fix when pgdata is not the follower's readable data directory. */
export async function checkDataDirectory(pgdata: string, majorVersion: number): Promise<void> {
  let text: string;
  try {
    text = await readFile(join(pgdata, 'PG_VERSION'), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new Error(
      `cannot read ${join(pgdata, 'PG_VERSION')} (${code}): mount the follower's data directory at this path, ` +
        `read-only is enough, and run as a user that may read it (or set pgdata to where it is mounted)`,
    );
  }
  const found = Number.parseInt(text.trim(), 10);
  if (found !== majorVersion) {
    throw new Error(`${pgdata} holds a PostgreSQL ${text.trim()} cluster but the follower runs ${majorVersion}: pgdata points at the wrong data directory`);
  }
}
