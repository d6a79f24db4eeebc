// Opening a session with the follower: connect (over its unix socket, as
// configured), read the layout facts the prefaulter and decoder need, and
// check that the data directory they name is readable here.
import type { Log } from '../log.ts';
import type { Config } from '../config/schema.ts';
import type { Follower, FollowerFacts } from '../follower/index.ts';
import { checkDataDirectory } from '../prefault/index.ts';
import { answerWithin, followerConnectOptions } from './session-helpers.ts';

export interface FollowerSession {
  follower: Follower;
  facts: FollowerFacts;
}

/** Connects and reads the facts; closes the connection again when a step fails. */
export async function openFollowerSession(cfg: Config, log: Log): Promise<FollowerSession> {
  // Loaded on first use: the SQL client is not needed to start prefaulting a recovery.
  const { Follower } = await import('../follower/follower.ts');
  const follower = await Follower.connect(followerConnectOptions(cfg));
  try {
    const facts = await answerWithin(follower.facts(), cfg.connectTimeoutMs, 'the follower facts query');
    await checkDataDirectory(cfg.pgdata || facts.dataDirectory, Math.floor(facts.serverVersionNum / 10000));
    log.info(
      { serverVersionNum: facts.serverVersionNum, dataDirectory: facts.dataDirectory, blockSize: facts.blockSize, walBlockSize: facts.walBlockSize },
      'connected to the follower',
    );
    return { follower, facts };
  } catch (e) {
    await follower.close().catch(() => {});
    throw e;
  }
}
