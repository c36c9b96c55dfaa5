import {
  getMetadataStorage,
  ValidationTypes,
  type ValidationArguments,
  type ValidatorConstraintInterface,
  type ValidatorOptions,
} from 'class-validator';

/** A class, as class-validator keys its metadata. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
type Class = Function;

type ValidationMetadata = ReturnType<ReturnType<typeof getMetadataStorage>['getTargetValidationMetadatas']>[number];

/** One rule of a property: a constraint's validator, with the arguments class-validator would give it. */
interface Rule {
  constraint: ValidatorConstraintInterface;
  constraints: unknown[];
  each: boolean;
}

/** The rules of one property, as class-validator runs them. */
interface PropertyPlan {
  name: string;
  /** IsOptional and the like: the rules apply only when every one of these holds. */
  conditions: ((object: object, value: unknown) => boolean)[];
  rules: Rule[];
  /** ValidateNested: the value is checked as the object (or objects) class-transformer built. */
  nested: boolean;
}

interface ClassPlan {
  properties: PropertyPlan[];
  known: Set<string>;
}

/**
 * Each class's plan, built on its first check and kept: a class's decorators run when the class
 * is defined, before any instance of it can be checked (a subclass defined later is a class of
 * its own). Rules added by calling a decorator on a class afterwards would be missed; nothing
 * here does that, nor swaps class-validator's container (the constraint instances are kept).
 * Null: a class left to class-validator (buildPlan).
 */
const plans = new Map<Class, ClassPlan | null>();

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
  return checkObject(instance);
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

function checkObject(object: unknown): boolean {
  if (typeof object !== 'object' || object === null) return false;
  const plan = planFor(object.constructor);
  if (!plan) return false;
  // whitelist + forbidNonWhitelisted: a property without rules is an error.
  for (const key of Object.keys(object)) if (!plan.known.has(key)) return false;
  const record = object as Record<string, unknown>;
  for (const p of plan.properties) {
    const value = record[p.name];
    if (!p.conditions.every((holds) => holds(object, value))) continue;
    if (!rulesHold(p, object, value)) return false;
    if (p.nested && value !== undefined && !nestedHolds(value)) return false;
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
      for (const item of value) if (r.constraint.validate(item, args) !== true) return false;
    } else if (r.constraint.validate(value, args) !== true) return false;
  }
  return true;
}

/** ValidateNested: an object is checked with its own class's rules, an array item by item. */
function nestedHolds(value: unknown): boolean {
  if (Array.isArray(value)) return value.every((item) => item === undefined || nestedHolds(item));
  if (value instanceof Set || value instanceof Map || !(value instanceof Object)) return false;
  return checkObject(value);
}

function planFor(cls: Class | undefined): ClassPlan | null {
  if (typeof cls !== 'function') return null;
  let plan = plans.get(cls);
  if (plan === undefined) plans.set(cls, (plan = buildPlan(cls)));
  return plan;
}

/**
 * The rules of `cls` as class-validator picks them with no groups, or null for a class left to
 * class-validator: one without rules (an error under forbidUnknownValues), or with a rule not
 * run the same way here (async, a decorator's `validateIf` option, a kind of rule not known
 * here). `@ValidateIf` and `@IsOptional` are conditions, which are run. class-validator also
 * names a schema when it validates a nested object; a schema selects only rules registered
 * by `registerSchema`, which Tagflow does not use.
 */
function buildPlan(cls: Class): ClassPlan | null {
  const storage = getMetadataStorage();
  const metadatas = storage.getTargetValidationMetadatas(cls, undefined as unknown as string, false, false, undefined);
  if (metadatas.length === 0) return null;
  const byProperty = new Map<string, ValidationMetadata[]>();
  for (const m of metadatas) byProperty.set(m.propertyName, [...(byProperty.get(m.propertyName) ?? []), m]);
  const properties: PropertyPlan[] = [];
  for (const [name, list] of byProperty) {
    const p: PropertyPlan = { name, conditions: [], rules: [], nested: false };
    for (const m of list) {
      if (m.validateIf) return null;
      switch (m.type) {
        case ValidationTypes.WHITELIST:
          break;
        case ValidationTypes.CONDITIONAL_VALIDATION:
          p.conditions.push(m.constraints[0] as PropertyPlan['conditions'][number]);
          break;
        case ValidationTypes.NESTED_VALIDATION:
          p.nested = true;
          break;
        case ValidationTypes.CUSTOM_VALIDATION:
        case ValidationTypes.IS_DEFINED:
          for (const c of storage.getTargetValidatorConstraints(m.constraintCls)) {
            if (c.async) return null;
            p.rules.push({ constraint: c.instance, constraints: m.constraints, each: m.each });
          }
          break;
        default:
          return null;
      }
    }
    properties.push(p);
  }
  return { properties, known: new Set(byProperty.keys()) };
}
