/** What the global setup brings up once per test run, handed to every test file. */
export interface StackInfo {
  temporalAddress: string;
  /** The application role's URL: what the product and the tests connect with. */
  databaseUrl: string;
  /** The schema owner's URL (migrations); only tests of the role boundary use it. */
  ownerDatabaseUrl: string;
  /** Environment that points a process at the test token and config (SOFTHSM_DIR, PKI_CONFIG, ...). */
  env: Record<string, string>;
  workDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}
