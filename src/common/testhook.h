/* Test hook: pause at a named point (see testhook.c). */
#ifndef NUBO_TESTHOOK_H
#define NUBO_TESTHOOK_H

/* When NUBO_TEST_PAUSE_FILE exists and names this point (its first line,
 * or NUBO_TEST_PAUSE_AT), write FILE.reached and wait while FILE still
 * names it (10 minutes at most). */
void testhook_pause(const char *point);
/* When NUBO_TEST_MARK_FILE is set, append "POINT PID" to it: a test waits
 * for what a process did (a scheduler pass, a heartbeat, the end of a
 * download) instead of sleeping and hoping it happened. */
void testhook_mark(const char *point);

#endif
