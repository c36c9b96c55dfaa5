import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { ProcessUser } from './executor.js';

/** The API refuses a larger output (413); the worker does not read more than this of $TAGFLOW_OUTPUT. */
export const OUTPUT_MAX_BYTES = 256 * 1024;

/**
 * Writes a file the task's processes will read (or write): owned by the task's user
 * under `--run-as`, so a script of mode 0700 is still its own.
 */
export async function writeTaskFile(
  path: string,
  data: string,
  mode: number,
  user: ProcessUser | undefined,
): Promise<void> {
  // A new file (never a link a task left there), given away through its handle, not its name.
  const handle = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    if (user) await handle.chown(user.uid, user.gid);
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
}

/**
 * Reads a file a task wrote, at most `maxBytes` of it. The task may have replaced it: a
 * symbolic link or a second hard link is refused (under `--run-as` the worker is root and
 * would otherwise read any file of the machine on the task's behalf). A missing file is empty.
 */
export async function readTaskFile(path: string, maxBytes: number): Promise<{ text: string; tooLarge: boolean }> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { text: '', tooLarge: false };
    if (code === 'ELOOP') throw new TaskFileRefused(`${path} is a symbolic link`);
    throw e;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new TaskFileRefused(`${path} is not a regular file`);
    if (st.nlink > 1) throw new TaskFileRefused(`${path} has other hard links`);
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return bytesRead > maxBytes
      ? { text: '', tooLarge: true }
      : { text: buf.subarray(0, bytesRead).toString('utf8'), tooLarge: false };
  } finally {
    await handle.close();
  }
}

export class TaskFileRefused extends Error {}
