/**
 * What the network layer needs to know about other workers: where a room
 * lives. In single-process mode there is no router and every room is local;
 * under the supervisor, `src/cluster/worker.ts` implements it over IPC.
 */

/** Where a room lives: here, or behind another worker's direct port. */
export type Placement = { readonly local: true } | { readonly local: false; readonly port: number; readonly host: string }

export interface Router {
  /**
   * Where room `id` lives. With `create`, a room no worker has is placed
   * (on the least-loaded worker); without, such a room resolves to null.
   * `address` is the client's (the directory caps claims in flight per
   * address: a claim over the cap resolves to `'address_limit'`).
   * Rejects when the directory does not answer in time.
   */
  locate(id: string, create: boolean, address: string): Promise<Placement | null | 'address_limit'>
  /** A room was created here. */
  opened(id: string): void
  /** A room here was disposed. */
  closed(id: string): void
}
