import { getMetadataStorage, ValidationTypes, type ValidationArguments, type ValidatorOptions } from 'class-validator';

/** A class, as class-validator keys its metadata. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
type Class = Function;

type ValidationMetadata = ReturnType<ReturnType<typeof getMetadataStorage>['getTargetValidationMetadatas']>[number];

/** One rule of a property: a constraint's validator, with the arguments class-validator would give it. */
interface Rule {
  validate: (value: unknown, args: ValidationArguments) => unknown;
  constraints: unknown[];
  each: boolean;
}

/** The rules of one property, as class-validator runs them. */
interface PropertyPlan {
  name: string;
  /** IsOptional and the like: the rules apply only when every one of these holds. */
  conditions: ((object: object, value: unknown) => boolean)[];
  rules: Rule[];
  /**
   * ValidateNested, once per decorator: the value is checked as the object (or objects)
   * class-transformer built, with the name of the class that declared the rule as schema.
   */
  nested: (string | undefined)[];
}

interface ClassPlan {
  properties: PropertyPlan[];
  known: Set<string>;
}

/**
 * A class this check leaves to class-validator: one without rules (an error under
 * forbidUnknownValues), or with a rule it does not run the same way (async, a decorator's
 * `validateIf` option, a kind of rule it does not know). `@ValidateIf` and `@IsOptional` are
 * conditions, which it runs.
 */
const UNSUPPORTED = null;

/**
 * Each class's plan, built on its first check and kept: a class's decorators run when the class
 * is defined, before any instance of it can be checked (a subclass defined later is a class of
 * its own). Rules added by calling a decorator on a class afterwards would be missed; nothing
 * here does that, nor swaps class-validator's container (the constraint instances are kept).
 */
const plans = new Map<Class, Map<string | undefined, ClassPlan | typeof UNSUPPORTED>>();

/**
 * Whether class-validator, run with VALIDATE_OPTIONS, would find nothing wrong with
 * `instance` (an object class-transformer built from a request): true only when every
 * rule class-validator would run holds. It runs the same rules (read from class-validator's
 * metadata, each constraint's own `validate`) without building an error object for every
 * property on the way: for a batch of a thousand tasks, class-validator's bookkeeping cost
 * more than its rules (an error entry for every property, valid or not, then pruned). False
 * means "not certainly valid": the caller then runs class-validator, whose errors name the
 * fields. What it cannot judge the same way (an async rule, a decorator's `validateIf`
 * option, a Set or a Map) makes it answer false.
 */
export function passesRules(instance: unknown): boolean {
  return checkObject(instance, undefined);
}

/**
 * Whether passesRules speaks for class-validator run with `options`: it reads the rules
 * class-validator picks with no groups and without `always`. The other options (whitelist
 * off, skipMissingProperties, forbidUnknownValues off...) only make class-validator pass more
 * than passesRules does.
 */
export function rulesCheckApplies(options: ValidatorOptions | undefined): boolean {
  return !options?.groups?.length && !options?.always && !options?.strictGroups;
}

function checkObject(object: unknown, schema: string | undefined): boolean {
  if (typeof object !== 'object' || object === null) return false;
  const plan = planFor(object.constructor, schema);
  if (!plan) return false;
  // whitelist + forbidNonWhitelisted: a property without rules is an error.
  for (const key of Object.keys(object)) if (!plan.known.has(key)) return false;
  const record = object as Record<string, unknown>;
  for (const p of plan.properties) {
    const value = record[p.name];
    if (!p.conditions.every((holds) => holds(object, value))) continue;
    if (!rulesHold(p, object, value)) return false;
    if (value !== undefined && !p.nested.every((schema) => nestedHolds(value, schema))) return false;
  }
  return true;
}

function rulesHold(p: PropertyPlan, object: object, value: unknown): boolean {
  if (p.rules.length === 0) return true;
  if (value instanceof Set || value instanceof Map) return false;
  const args: ValidationArguments = {
    targetName: object.constructor?.name,
    property: p.name,
    object,
    value,
    constraints: [],
  };
  // A rule passes on `true` only: class-validator takes any truthy answer, so a rule answering
  // otherwise (a promise, say) sends the body to class-validator, which is slower, not wrong.
  for (const r of p.rules) {
    args.constraints = r.constraints;
    if (r.each && Array.isArray(value)) {
      for (const item of value) if (r.validate(item, args) !== true) return false;
    } else if (r.validate(value, args) !== true) return false;
  }
  return true;
}

/** ValidateNested: an object is checked with its own class's rules, an array item by item. */
function nestedHolds(value: unknown, schema: string | undefined): boolean {
  if (Array.isArray(value)) return value.every((item) => item === undefined || nestedHolds(item, schema));
  if (value instanceof Set || value instanceof Map || !(value instanceof Object)) return false;
  return checkObject(value, schema);
}

function planFor(cls: Class | undefined, schema: string | undefined): ClassPlan | typeof UNSUPPORTED {
  if (typeof cls !== 'function') return UNSUPPORTED;
  let bySchema = plans.get(cls);
  if (!bySchema) plans.set(cls, (bySchema = new Map<string | undefined, ClassPlan | typeof UNSUPPORTED>()));
  if (bySchema.has(schema)) return bySchema.get(schema)!;
  const plan = buildPlan(cls, schema);
  bySchema.set(schema, plan);
  return plan;
}

function buildPlan(cls: Class, schema: string | undefined): ClassPlan | typeof UNSUPPORTED {
  const storage = getMetadataStorage();
  const metadatas = storage.getTargetValidationMetadatas(cls, schema as string, false, false, undefined);
  // forbidUnknownValues: an object of a class without rules is an error.
  if (metadatas.length === 0) return UNSUPPORTED;
  const byProperty = new Map<string, ValidationMetadata[]>();
  for (const m of metadatas) byProperty.set(m.propertyName, [...(byProperty.get(m.propertyName) ?? []), m]);
  const properties: PropertyPlan[] = [];
  for (const [name, list] of byProperty) {
    const p: PropertyPlan = { name, conditions: [], rules: [], nested: [] };
    for (const m of list) {
      if (m.validateIf) return UNSUPPORTED;
      switch (m.type) {
        case ValidationTypes.WHITELIST:
          break;
        case ValidationTypes.CONDITIONAL_VALIDATION:
          p.conditions.push(m.constraints[0] as PropertyPlan['conditions'][number]);
          break;
        case ValidationTypes.NESTED_VALIDATION:
          p.nested.push(typeof m.target === 'string' ? m.target : m.target.name);
          break;
        case ValidationTypes.CUSTOM_VALIDATION:
        case ValidationTypes.IS_DEFINED:
          for (const c of storage.getTargetValidatorConstraints(m.constraintCls)) {
            if (c.async) return UNSUPPORTED;
            const instance = c.instance;
            p.rules.push({
              validate: (value, args) => instance.validate(value, args),
              constraints: m.constraints,
              each: m.each,
            });
          }
          break;
        default:
          return UNSUPPORTED;
      }
    }
    properties.push(p);
  }
  return { properties, known: new Set(byProperty.keys()) };
}
