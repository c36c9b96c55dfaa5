import type { EntityManager, EntityTarget, ObjectLiteral } from 'typeorm';

/** A raw row (every column, by database name) as an entity. */
export function hydrate<T extends ObjectLiteral>(
  em: EntityManager,
  entity: EntityTarget<T>,
  raw: Record<string, unknown>,
): T {
  const meta = em.connection.getMetadata(entity);
  const driver = em.connection.driver;
  const out = meta.create() as T;
  for (const column of meta.columns) {
    if (column.databaseName in raw)
      column.setEntityValue(out, driver.prepareHydratedValue(raw[column.databaseName], column));
  }
  return out;
}

/** A value as the database stores it in that column (JSON as text, transformers applied). */
export function persisted<T extends ObjectLiteral>(
  em: EntityManager,
  entity: EntityTarget<T>,
  property: string,
  value: unknown,
): unknown {
  const column = em.connection.getMetadata(entity).findColumnWithPropertyName(property);
  if (!column) throw new Error(`no column ${property}`);
  return em.connection.driver.preparePersistentValue(value, column);
}
