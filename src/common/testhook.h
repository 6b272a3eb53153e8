/* Test hook: pause at a named point (see testhook.c). */
#ifndef NUBO_TESTHOOK_H
#define NUBO_TESTHOOK_H

/* When NUBO_TEST_PAUSE_FILE exists and names this point (its first line,
 * or NUBO_TEST_PAUSE_AT), write FILE.reached and wait while FILE still
 * names it (10 minutes at most). */
void testhook_pause(const char *point);

#endif
