/* waits.c — wrappers around libc's blocking calls, so that time a thread spends waiting (a worker on a condition
 * variable, a join, a sleep, a poll) is recorded as waiting in the call path that waited, not read as work.
 *
 * Linked into the shared runtime only: libcprofrt.so comes before libc in every instrumented program's library
 * order, so these definitions interpose on libc's for the program and its libraries (interpose.h). A wrapper
 * costs nothing measurable beside a blocking call, but locks are taken far more often than they block: a lock is
 * first tried without blocking, and timed only when that fails. */
#define _GNU_SOURCE
#include "waits.h"
#include "interpose.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const int cprof_waits_tracked = 1;

/* `failure` is what the call returns when libc lacks the function (never on the glibc the runtime was built
 * against): pthread functions report errors by value, the others by -1 and errno. */
#define WAITING_CALL(type, name, params, args, failure)                                                       \
    type name params                                                                                          \
    {                                                                                                         \
        static void *cache;                                                                                   \
        type (*real) params = (type (*) params)cprof_next_definition(&cache, #name);                                \
        cprof_u64 start;                                                                                      \
        type result;                                                                                          \
        if (!real) {                                                                                          \
            errno = ENOSYS;                                                                                   \
            return failure;                                                                                   \
        }                                                                                                     \
        start = cprof_wait_begin();                                                                           \
        result = real args;                                                                                   \
        if (start) {                                                                                          \
            int saved = errno;                                                                                \
            cprof_wait_end(start);                                                                            \
            errno = saved;                                                                                    \
        }                                                                                                     \
        return result;                                                                                        \
    }

/* Locks: only a lock that is already held makes the caller wait. */
#define WAITING_LOCK(name, try_name, type)                                                                    \
    int name(type *lock)                                                                                      \
    {                                                                                                         \
        static void *cache, *try_cache;                                                                       \
        int (*real)(type *) = (int (*)(type *))cprof_next_definition(&cache, #name);                                \
        int (*try_real)(type *) = (int (*)(type *))cprof_next_definition(&try_cache, #try_name);                    \
        cprof_u64 start;                                                                                      \
        int result;                                                                                           \
        if (!real || !try_real)                                                                               \
            return ENOSYS;                                                                                    \
        result = try_real(lock);                                                                              \
        if (result != EBUSY)                                                                                  \
            return result;                                                                                    \
        start = cprof_wait_begin();                                                                           \
        result = real(lock);                                                                                  \
        if (start)                                                                                            \
            cprof_wait_end(start);                                                                            \
        return result;                                                                                        \
    }

WAITING_CALL(int, pthread_cond_wait, (pthread_cond_t *cond, pthread_mutex_t *mutex), (cond, mutex), ENOSYS)
WAITING_CALL(int, pthread_cond_timedwait,
             (pthread_cond_t *cond, pthread_mutex_t *mutex, const struct timespec *deadline),
             (cond, mutex, deadline), ENOSYS)
WAITING_CALL(int, pthread_cond_clockwait,
             (pthread_cond_t *cond, pthread_mutex_t *mutex, clockid_t clock, const struct timespec *deadline),
             (cond, mutex, clock, deadline), ENOSYS)
WAITING_CALL(int, pthread_join, (pthread_t thread, void **value), (thread, value), ENOSYS)
WAITING_CALL(int, pthread_timedjoin_np, (pthread_t thread, void **value, const struct timespec *deadline),
             (thread, value, deadline), ENOSYS)
WAITING_CALL(int, pthread_barrier_wait, (pthread_barrier_t *barrier), (barrier), ENOSYS)
WAITING_LOCK(pthread_mutex_lock, pthread_mutex_trylock, pthread_mutex_t)
WAITING_LOCK(pthread_rwlock_rdlock, pthread_rwlock_tryrdlock, pthread_rwlock_t)
WAITING_LOCK(pthread_rwlock_wrlock, pthread_rwlock_trywrlock, pthread_rwlock_t)
WAITING_CALL(int, sem_wait, (sem_t *semaphore), (semaphore), -1)
WAITING_CALL(int, sem_timedwait, (sem_t *semaphore, const struct timespec *deadline), (semaphore, deadline), -1)
WAITING_CALL(int, nanosleep, (const struct timespec *duration, struct timespec *left), (duration, left), -1)
WAITING_CALL(int, clock_nanosleep,
             (clockid_t clock, int flags, const struct timespec *duration, struct timespec *left),
             (clock, flags, duration, left), ENOSYS)
WAITING_CALL(unsigned, sleep, (unsigned seconds), (seconds), seconds)
WAITING_CALL(int, usleep, (useconds_t microseconds), (microseconds), -1)
WAITING_CALL(int, pause, (void), (), -1)
WAITING_CALL(int, poll, (struct pollfd *fds, nfds_t count, int timeout), (fds, count, timeout), -1)
WAITING_CALL(int, ppoll,
             (struct pollfd *fds, nfds_t count, const struct timespec *timeout, const sigset_t *mask),
             (fds, count, timeout, mask), -1)
WAITING_CALL(int, select, (int count, fd_set *readable, fd_set *writable, fd_set *errors, struct timeval *timeout),
             (count, readable, writable, errors, timeout), -1)
WAITING_CALL(int, pselect,
             (int count, fd_set *readable, fd_set *writable, fd_set *errors, const struct timespec *timeout,
              const sigset_t *mask),
             (count, readable, writable, errors, timeout, mask), -1)
WAITING_CALL(int, epoll_wait, (int epoll, struct epoll_event *events, int count, int timeout),
             (epoll, events, count, timeout), -1)
WAITING_CALL(int, epoll_pwait,
             (int epoll, struct epoll_event *events, int count, int timeout, const sigset_t *mask),
             (epoll, events, count, timeout, mask), -1)
WAITING_CALL(pid_t, wait, (int *status), (status), -1)
WAITING_CALL(pid_t, waitpid, (pid_t pid, int *status, int options), (pid, status, options), -1)
WAITING_CALL(pid_t, wait4, (pid_t pid, int *status, int options, struct rusage *usage),
             (pid, status, options, usage), -1)
WAITING_CALL(int, waitid, (idtype_t type, id_t id, siginfo_t *info, int options), (type, id, info, options), -1)
WAITING_CALL(int, sigwait, (const sigset_t *set, int *signal_number), (set, signal_number), ENOSYS)
WAITING_CALL(int, sigwaitinfo, (const sigset_t *set, siginfo_t *info), (set, info), -1)
WAITING_CALL(int, sigtimedwait, (const sigset_t *set, siginfo_t *info, const struct timespec *timeout),
             (set, info, timeout), -1)
WAITING_CALL(int, accept, (int socket, struct sockaddr *address, socklen_t *length), (socket, address, length), -1)
WAITING_CALL(int, accept4, (int socket, struct sockaddr *address, socklen_t *length, int flags),
             (socket, address, length, flags), -1)
WAITING_CALL(int, flock, (int fd, int operation), (fd, operation), -1)
