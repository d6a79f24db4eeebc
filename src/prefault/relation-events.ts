// What happened to relations and databases between replay and the head of
// the window: created, truncated or dropped by WAL that replay has not applied
// yet. Blocks of such relations are not worth reading (new files, pages about
// to be re-extended, files about to disappear). An entry lives until replay
// passes the event that made it. Event LSNs are record LSNs (numbers); the
// replay LSN arrives as a bigint.
import type { RelationEvent } from '../wal/types.ts';
import type { SkipReason } from './skip.ts';

const SMGR_TRUNCATE_HEAP = 0x0001;

interface RelState {
  spcOid: number;
  dbOid: number;
  relNumber: number;
  /** bit per fork created in the window */
  createdForks: number;
  /** main fork truncated to this many blocks (-1: not truncated) */
  truncatedTo: number;
  dropped: boolean;
  /** LSN of the last event: the entry is retired once replay passes it */
  lastLsn: number;
}

interface DbState {
  created: boolean;
  dropped: boolean;
  lastLsn: number;
}

export interface DropListener {
  relationDropped(spcOid: number, dbOid: number, relNumber: number): void;
  databaseDropped(dbOid: number): void;
}

export class RelationEvents {
  private readonly rels = new Map<number, Map<number, RelState[]>>();
  private readonly dbs = new Map<number, DbState>();
  /** Events in LSN order, for retiring entries as replay advances. */
  private readonly order: { lsn: number; rel: RelState | null; dbOid: number }[] = [];
  private orderHead = 0;
  private readonly listener: DropListener;

  constructor(listener: DropListener) {
    this.listener = listener;
  }

  get empty(): boolean {
    return this.dbs.size === 0 && this.rels.size === 0;
  }

  /** Why a block should not be read because of a pending event, or null. */
  skipReason(spcOid: number, dbOid: number, relNumber: number, fork: number, block: number): SkipReason | null {
    if (this.dbs.size > 0) {
      const d = this.dbs.get(dbOid);
      if (d !== undefined) {
        if (d.dropped) return 'dropped';
        if (d.created) return 'created';
      }
    }
    const list = this.rels.get(dbOid)?.get(relNumber);
    if (list === undefined) return null;
    for (const r of list) {
      if (r.spcOid !== spcOid) continue;
      if (r.dropped) return 'dropped';
      if ((r.createdForks & (1 << fork)) !== 0) return 'created';
      // vm/fsm truncation sizes derive from heap blocks by page-layout maths; those reads are merely wasted, not wrong.
      if (fork === 0 && r.truncatedTo >= 0 && block >= r.truncatedTo) return 'truncated';
    }
    return null;
  }

  apply(ev: RelationEvent, lsn: number): void {
    switch (ev.kind) {
      case 'smgr-create': {
        const r = this.rel(ev.spcOid, ev.dbOid, ev.relNumber, lsn);
        r.createdForks |= 1 << ev.fork;
        r.dropped = false; // a reused relfilenumber
        break;
      }
      case 'smgr-truncate': {
        if ((ev.flags & SMGR_TRUNCATE_HEAP) === 0) break;
        const r = this.rel(ev.spcOid, ev.dbOid, ev.relNumber, lsn);
        r.truncatedTo = r.truncatedTo < 0 ? ev.blocks : Math.min(r.truncatedTo, ev.blocks);
        break;
      }
      case 'db-create': {
        this.db(ev.dbOid, lsn).created = true;
        break;
      }
      case 'db-drop': {
        this.db(ev.dbOid, lsn).dropped = true;
        this.listener.databaseDropped(ev.dbOid);
        break;
      }
      case 'rels-dropped': {
        for (const x of ev.rels) {
          this.rel(x.spcOid, x.dbOid, x.relNumber, lsn).dropped = true;
          this.listener.relationDropped(x.spcOid, x.dbOid, x.relNumber);
        }
        break;
      }
    }
  }

  /**
   * An event of a record replay had passed before we planned it (the agent
   * fell behind): nothing to track, but its drops still close what earlier
   * records opened (skipped, they left the fds of dropped files open for good).
   */
  passed(ev: RelationEvent): void {
    if (ev.kind === 'db-drop') this.listener.databaseDropped(ev.dbOid);
    else if (ev.kind === 'rels-dropped') for (const x of ev.rels) this.listener.relationDropped(x.spcOid, x.dbOid, x.relNumber);
  }

  /** Forget events replay has applied; drops are announced again (fds opened meanwhile must go too). */
  retire(replay: bigint): void {
    const replayLsn = Number(replay);
    const order = this.order;
    while (this.orderHead < order.length && order[this.orderHead]!.lsn < replayLsn) {
      const e = order[this.orderHead++]!;
      if (e.rel !== null) {
        const r = e.rel;
        if (r.lastLsn >= replayLsn) continue;
        const byRel = this.rels.get(r.dbOid);
        const list = byRel?.get(r.relNumber);
        if (list === undefined) continue;
        const i = list.indexOf(r);
        if (i < 0) continue;
        list.splice(i, 1);
        if (list.length === 0) byRel!.delete(r.relNumber);
        if (byRel!.size === 0) this.rels.delete(r.dbOid);
        if (r.dropped) this.listener.relationDropped(r.spcOid, r.dbOid, r.relNumber);
      } else {
        const d = this.dbs.get(e.dbOid);
        if (d === undefined || d.lastLsn >= replayLsn) continue;
        this.dbs.delete(e.dbOid);
        if (d.dropped) this.listener.databaseDropped(e.dbOid);
      }
    }
    if (this.orderHead > 1024 && this.orderHead * 2 > order.length) {
      order.splice(0, this.orderHead);
      this.orderHead = 0;
    }
  }

  clear(): void {
    this.rels.clear();
    this.dbs.clear();
    this.order.length = 0;
    this.orderHead = 0;
  }

  private rel(spcOid: number, dbOid: number, relNumber: number, lsn: number): RelState {
    let byRel = this.rels.get(dbOid);
    if (byRel === undefined) this.rels.set(dbOid, (byRel = new Map()));
    let list = byRel.get(relNumber);
    if (list === undefined) byRel.set(relNumber, (list = []));
    let r = list.find((x) => x.spcOid === spcOid);
    if (r === undefined) {
      r = { spcOid, dbOid, relNumber, createdForks: 0, truncatedTo: -1, dropped: false, lastLsn: lsn };
      list.push(r);
    }
    r.lastLsn = lsn;
    this.order.push({ lsn, rel: r, dbOid });
    return r;
  }

  private db(dbOid: number, lsn: number): DbState {
    let d = this.dbs.get(dbOid);
    if (d === undefined) this.dbs.set(dbOid, (d = { created: false, dropped: false, lastLsn: lsn }));
    d.lastLsn = lsn;
    this.order.push({ lsn, rel: null, dbOid });
    return d;
  }
}
