// Tells a WAL stream that decodes nothing but errors (wrong server, a proxy
// altering bytes, a different segment size) from one with an occasional
// damaged record: after an error, how much input went by without one record.
export const UNDECODABLE_AFTER_BYTES = 1024 * 1024;

export class DecodeHealth {
  private errorsSinceRecord = 0;
  private firstErrorLsn: bigint | null = null;

  constructor(private readonly afterBytes = UNDECODABLE_AFTER_BYTES) {}

  /** A record decoded: the stream is healthy again. */
  record(): void {
    this.errorsSinceRecord = 0;
    this.firstErrorLsn = null;
  }

  error(lsn: bigint): void {
    this.errorsSinceRecord++;
    this.firstErrorLsn ??= lsn;
  }

  /** Errors and no record for afterBytes of WAL up to inputLsn. */
  undecodable(inputLsn: bigint): boolean {
    return this.firstErrorLsn !== null && inputLsn - this.firstErrorLsn >= BigInt(this.afterBytes);
  }

  /** Where the undecodable stretch began, and how many errors it held. */
  get stretch(): { fromLsn: bigint | null; errors: number } {
    return { fromLsn: this.firstErrorLsn, errors: this.errorsSinceRecord };
  }
}
