// Worker thread of `decode --stats` (decode-parallel.ts): one part's counts.
import { parentPort, workerData } from 'node:worker_threads';
import { statsPart } from './decode-parallel.ts';
import type { DecodeRange } from './decode-files.ts';

parentPort!.postMessage(await statsPart(workerData as DecodeRange));
