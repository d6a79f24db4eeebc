// Placeholder until the run command lands; the CLI registry already points here.
export default async function runCommand(_argv: string[]): Promise<number> {
  process.stderr.write('pg-prefaulter run: not available in this build yet\n');
  return 1;
}
