/* SwiftPM needs one source file to build the header-only PluginKitEntry target. The function
 * declared in the header is defined by the plugin author, never here. */
#include "molt_pluginkit_entry.h"
