/*
 * rebind.so: moves a program's listening port onto loopback, so that only
 * websockify (wrap mode) can reach it.
 *
 * Loaded with LD_PRELOAD; hooks bind() only. When REBIND_OLD_PORT and
 * REBIND_NEW_PORT are set, a bind() to port OLD is turned into a bind() to
 * port NEW on loopback; every other call passes through untouched:
 *
 *   AF_INET,  port OLD                        -> 127.0.0.1:NEW
 *   AF_INET6, port OLD, dual-stack socket,
 *             address :: or ::ffff:a.b.c.d    -> [::ffff:127.0.0.1]:NEW
 *   AF_INET6, port OLD, otherwise             -> [::1]:NEW
 *
 * The dual-stack case: a socket on "::" without IPV6_V6ONLY (Node's default,
 * and many servers') accepts IPv4 too, so it moves to IPv4 loopback and stays
 * reachable at 127.0.0.1:NEW, where websockify connects first, even where
 * ::1 is missing (containers without IPv6). An IPv6-only socket cannot take
 * an IPv4 address, so it moves to ::1; websockify tries [::1]:NEW when
 * 127.0.0.1:NEW refuses.
 *
 * The family is checked before the address is read (upstream read a
 * sockaddr_in first and never handled IPv6). Build: make (or websockify
 * builds it on first use).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The same names as lib/wrap.ts (tests/wrap_test.ts checks). */
#define OLD_PORT_ENV "REBIND_OLD_PORT"
#define NEW_PORT_ENV "REBIND_NEW_PORT"

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

/* A port from the environment, or -1 when unset or not 1..65535. */
static int env_port(const char *name) {
  const char *text = getenv(name);
  char *end;
  long port;
  if (text == NULL || *text == '\0') return -1;
  port = strtol(text, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535) return -1;
  return (int)port;
}

/* True for a socket that also accepts IPv4 (IPV6_V6ONLY off). */
static int dual_stack(int fd) {
  int v6only = 1;
  socklen_t len = sizeof v6only;
  if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) != 0) return 0;
  return v6only == 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  /* Looked up once; a race only repeats the same lookup. */
  static bind_fn real_bind;
  int old_port, new_port;
  if (real_bind == NULL) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
  if (real_bind == NULL) {
    errno = ENOSYS;
    return -1;
  }
  old_port = env_port(OLD_PORT_ENV);
  new_port = env_port(NEW_PORT_ENV);
  if (addr == NULL || old_port < 0 || new_port < 0) return real_bind(fd, addr, len);

  if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    struct sockaddr_in in;
    memcpy(&in, addr, sizeof in);
    if (ntohs(in.sin_port) != old_port) return real_bind(fd, addr, len);
    in.sin_port = htons((unsigned short)new_port);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return real_bind(fd, (const struct sockaddr *)&in, sizeof in);
  }

  if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 in6;
    memcpy(&in6, addr, sizeof in6);
    if (ntohs(in6.sin6_port) != old_port) return real_bind(fd, addr, len);
    in6.sin6_port = htons((unsigned short)new_port);
    in6.sin6_flowinfo = 0;
    in6.sin6_scope_id = 0;
    if ((IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr) || IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) &&
        dual_stack(fd)) {
      /* ::ffff:127.0.0.1 */
      memset(&in6.sin6_addr, 0, sizeof in6.sin6_addr);
      in6.sin6_addr.s6_addr[10] = 0xff;
      in6.sin6_addr.s6_addr[11] = 0xff;
      in6.sin6_addr.s6_addr[12] = 127;
      in6.sin6_addr.s6_addr[15] = 1;
    } else {
      in6.sin6_addr = in6addr_loopback;
    }
    return real_bind(fd, (const struct sockaddr *)&in6, sizeof in6);
  }

  return real_bind(fd, addr, len);
}
