import { Column, Entity, PrimaryColumn } from 'typeorm';
import { JsonColumn, MsColumn } from './columns.js';

export type Role = 'admin' | 'operator' | 'reader' | 'worker';

/** An API key. Only a hash of its token is kept: the token itself is shown once, at creation. */
@Entity('api_key')
export class ApiKeyEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 128 })
  name: string;

  @Column({ type: 'varchar', length: 16 })
  role: Role;

  @Column({ type: 'varchar', length: 63 })
  namespace: string;

  /** Tag grants: exact tags, prefixes ending in `*`, or `*` alone. */
  @JsonColumn()
  tags: string[];

  /** SHA-256 of the token, hex. */
  @Column({ type: 'varchar', length: 64 })
  token_hash: string;

  @MsColumn({ nullable: false })
  created_at: number;

  @MsColumn()
  expires_at: number | null;

  @MsColumn()
  revoked_at: number | null;
}
