#ifndef MOLT_REDISSTATE_CHIREDIS_SHIM_H
#define MOLT_REDISSTATE_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
