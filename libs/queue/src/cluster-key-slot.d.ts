declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot (0-16383) of a key, its hash tag honoured. */
  export default function calculateSlot(key: string): number;
}
