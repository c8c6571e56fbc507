#ifndef NOXY_GO_CBENCH_H
#define NOXY_GO_CBENCH_H

#include <stddef.h>
#include <noxy.h>

/* Starts n send-and-wait decisions with noxy_send_and_wait_async, all at once, then waits on a
 * condition variable until every callback has run. Returns how many failed or were not
 * approved. */
long cbench_send_and_wait(const noxy_client *client, const char *identity_id, const char *payload,
                          size_t payload_len, const noxy_wait_options *wait, long n);

#endif
