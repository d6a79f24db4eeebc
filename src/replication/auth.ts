// Password authentication exchanges: MD5 and SCRAM-SHA-256 (RFC 5802/7677,
// without channel binding). Passwords never leave this module except hashed.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/** The reply to AuthenticationMD5Password: "md5" + md5(md5(password + user) + salt). */
export function md5PasswordResponse(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user).digest('hex');
  return `md5${createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex')}`;
}

function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text).digest();
}

/** One SCRAM-SHA-256 client exchange. */
export class ScramClient {
  static readonly MECHANISM = 'SCRAM-SHA-256';
  private readonly clientNonce = randomBytes(18).toString('base64');
  private readonly clientFirstBare: string;
  private serverSignature: Buffer | null = null;

  // The user name is empty: the server takes it from the startup message.
  constructor(private readonly password: string) {
    this.clientFirstBare = `n=,r=${this.clientNonce}`;
  }

  /** client-first-message, sent with SASLInitialResponse. */
  clientFirst(): string {
    return `n,,${this.clientFirstBare}`;
  }

  /** client-final-message for the server-first-message (AuthenticationSASLContinue). */
  clientFinal(serverFirst: string): string {
    const attrs = parseAttrs(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) {
      throw new Error('SCRAM: malformed server-first-message');
    }
    if (!nonce.startsWith(this.clientNonce)) throw new Error('SCRAM: server nonce does not extend the client nonce');
    // PostgreSQL applies SASLprep but uses the raw password when it is not valid
    // UTF-8 normalizable text; plain ASCII passwords are unaffected either way.
    const salted = pbkdf2Sync(this.password.normalize('NFKC'), Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const finalWithoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${finalWithoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    this.serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${finalWithoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks the server-final-message (AuthenticationSASLFinal); throws when the server cannot prove it knows the password. */
  verifyServerFinal(serverFinal: string): void {
    const attrs = parseAttrs(serverFinal);
    if (attrs.has('e')) throw new Error(`SCRAM: server reported error ${attrs.get('e')}`);
    const v = attrs.get('v');
    if (!v || !this.serverSignature) throw new Error('SCRAM: malformed server-final-message');
    const got = Buffer.from(v, 'base64');
    if (got.length !== this.serverSignature.length || !timingSafeEqual(got, this.serverSignature)) {
      throw new Error('SCRAM: server signature does not match (possible man-in-the-middle)');
    }
  }
}

function parseAttrs(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) m.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return m;
}
