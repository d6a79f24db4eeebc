// The startup exchange of a replication connection: the StartupMessage
// (replication=true) and authentication (trust, password, md5, SCRAM-SHA-256),
// up to the server's first ReadyForQuery.
import { serialize } from 'pg-protocol';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { md5PasswordResponse, ScramClient } from './auth.ts';
import { describeTarget, type ConnOptions } from './conninfo.ts';
import { ReplicationError, type ServerErrorFields } from './errors.ts';
import { asError, asMd5, asSaslData, asSaslStart } from './messages.ts';

/** What the exchange needs from its connection. */
export interface StartupWire {
  write(buf: Buffer): void;
  readMessage(): Promise<BackendMessage>;
  /** Ends the connection with err and returns it (to throw). */
  failWith(err: ReplicationError): ReplicationError;
  serverError(f: ServerErrorFields): ReplicationError;
}

/** Sends the StartupMessage and authenticates; resolves at ReadyForQuery. */
export async function startup(wire: StartupWire, o: ConnOptions): Promise<void> {
  const params: Record<string, string> = { user: o.user, application_name: o.applicationName, replication: 'true' };
  if (o.dbname) params.database = o.dbname;
  wire.write(serialize.startup(params));
  const fail = (code: 'AUTH_FAILED' | 'PROTOCOL', message: string): ReplicationError => wire.failWith(new ReplicationError(code, message));
  let scram: ScramClient | null = null;
  let scramVerified = false;
  const needPassword = (): string => {
    if (o.password === undefined) {
      throw new ReplicationError(
        'AUTH_FAILED',
        `server ${describeTarget(o)} asks for a password for user "${o.user}" but none is set: give password= in the conninfo, PGPASSWORD, or a ~/.pgpass entry`,
      );
    }
    return o.password;
  };
  for (;;) {
    const msg = await wire.readMessage();
    switch (msg.name) {
      case 'authenticationOk':
        if (scram && !scramVerified) {
          throw fail('AUTH_FAILED', `server ${describeTarget(o)} ended SCRAM authentication without proving it knows the password; refusing the connection`);
        }
        if (msg.length !== 8) {
          throw fail('AUTH_FAILED', `server ${describeTarget(o)} asked for an authentication method pg-prefaulter does not support; use scram-sha-256, md5, password or trust in pg_hba.conf`);
        }
        break;
      case 'authenticationCleartextPassword':
        wire.write(serialize.password(needPassword()));
        break;
      case 'authenticationMD5Password':
        wire.write(serialize.password(md5PasswordResponse(o.user, needPassword(), asMd5(msg).salt)));
        break;
      case 'authenticationSASL': {
        const mechs = asSaslStart(msg).mechanisms;
        if (!mechs.includes(ScramClient.MECHANISM)) {
          throw fail('AUTH_FAILED', `server offers SASL mechanisms ${mechs.join(', ')}; pg-prefaulter supports only SCRAM-SHA-256`);
        }
        // SCRAM-SHA-256-PLUS (channel binding) may be offered too; plain SCRAM is always accepted
        scram = new ScramClient(needPassword());
        wire.write(serialize.sendSASLInitialResponseMessage(ScramClient.MECHANISM, scram.clientFirst()));
        break;
      }
      case 'authenticationSASLContinue':
        if (!scram) throw fail('PROTOCOL', 'SASLContinue without SASL start');
        try {
          wire.write(serialize.sendSCRAMClientFinalMessage(scram.clientFinal(asSaslData(msg).data)));
        } catch (e) {
          throw fail('AUTH_FAILED', `${describeTarget(o)}: ${(e as Error).message}`);
        }
        break;
      case 'authenticationSASLFinal':
        try {
          scram?.verifyServerFinal(asSaslData(msg).data);
          scramVerified = scram !== null;
        } catch (e) {
          throw fail('AUTH_FAILED', `${describeTarget(o)}: ${(e as Error).message}`);
        }
        break;
      case 'backendKeyData':
        break;
      case 'error':
        throw wire.failWith(wire.serverError(asError(msg)));
      case 'readyForQuery':
        return;
      default:
        throw fail('PROTOCOL', `unexpected ${msg.name} during startup from ${describeTarget(o)}`);
    }
  }
}
