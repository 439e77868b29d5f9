// Replaced by the stack bootstrap (Temporal dev server, SoftHSM token, Postgres database).
export default async function setup(): Promise<void> {}
