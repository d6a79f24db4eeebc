// Placeholder until the status command lands; the CLI registry already points here.
export default async function statusCommand(_argv: string[]): Promise<number> {
  process.stderr.write('pg-prefaulter status: not available in this build yet\n');
  return 1;
}
