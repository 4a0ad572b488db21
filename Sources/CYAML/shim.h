/* libyaml for Config's YAML composer (Sources/Config/YAML). */
#ifndef MOLT_CYAML_SHIM_H
#define MOLT_CYAML_SHIM_H

#include <yaml.h>

#endif
