/* tcp_proxy.h: a loopback TCP forwarder in front of etcd that the test can cut, so that a watch loses its
 * connection while etcd keeps running (and can be compacted meanwhile). One thread; test use only. */
#ifndef TCP_PROXY_H
#define TCP_PROXY_H

#include <stdint.h>

typedef struct tcp_proxy tcp_proxy;

/* Listens on a free loopback port (written to *port) and forwards each connection to 127.0.0.1:target. */
tcp_proxy *proxy_start(uint16_t target, uint16_t *port);
/* Ends every forwarded connection now (the client sees the stream end) and closes new ones at once until
 * proxy_restore. */
void proxy_cut(tcp_proxy *proxy);
void proxy_restore(tcp_proxy *proxy);
/* Stops the thread, closes everything, frees the proxy. */
void proxy_stop(tcp_proxy *proxy);

#endif /* TCP_PROXY_H */
