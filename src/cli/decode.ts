// Placeholder until the decode command lands; the CLI registry already points here.
export default async function decodeCommand(_argv: string[]): Promise<number> {
  process.stderr.write('pg-prefaulter decode: not available in this build yet\n');
  return 1;
}
