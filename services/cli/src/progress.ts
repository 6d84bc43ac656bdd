import { SingleBar } from 'cli-progress';

/** A progress bar on stderr; cli-progress draws it only on a terminal, so piped output stays clean. */
export function progressBar(format: string): SingleBar {
  return new SingleBar({ format, hideCursor: true, stream: process.stderr, barCompleteChar: '#', barIncompleteChar: '.' });
}
