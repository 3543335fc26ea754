/*
 * fault — fault-injection seams (after SQLite's faultsim and curl's torture
 * mode).  A seam sits around each call that touches the outside world:
 * sqlite3_step() (cache_step) and curl_easy_perform() (the http module).
 * Tests arm a point to fail its Nth call from now with a given code; the
 * wrapped call then returns that code without running.
 *
 * Integration tests arm points in a child process through the environment:
 *     OPTSYNC_FAULT=sqlite_step:5:13      (fail the 5th step with SQLITE_FULL)
 * Several points are separated by commas.  "N+" instead of N fails every
 * call from the Nth on.
 */
#ifndef OPTSYNC_FAULT_H
#define OPTSYNC_FAULT_H

enum fault_point {
    FAULT_SQLITE_STEP = 0,
    FAULT_CURL_PERFORM,
    FAULT_POINT_COUNT,
};

/* Fail the nth call (1 = the next one) with `code`; persist = and after. */
void fault_arm(enum fault_point point, long nth, int code, int persist);
void fault_disarm_all(void);

/*
 * Called by the seam before the real call: returns 0 to go ahead, or the
 * code to fail with.  Cheap when nothing is armed (one relaxed load).
 */
int fault_check(enum fault_point point);

/* Calls made through a point since it was last armed (for tests). */
long fault_calls(enum fault_point point);

/* Arms points from OPTSYNC_FAULT; ERR_BADINPUT when it does not parse. */
int fault_arm_from_env(void);

#endif
