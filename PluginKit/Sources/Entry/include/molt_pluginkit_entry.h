/*
 * molt_pluginkit_entry.h: how PluginKit finds the plugin author's component type.
 *
 * A Swift plugin built with PluginKit defines exactly one function with this C name, in the same
 * shared library:
 *
 *     @_cdecl("molt_pluginkit_component")
 *     public func moltComponent() -> UnsafeRawPointer { PluginKit.export(MyLock.self) }
 *
 * PluginKit calls it once, on the first call from the host after molt_abi_version, and keeps the
 * result for as long as the library is loaded. The linker resolves the reference inside the plugin's
 * own .so, so no static initializer is needed. This is not part of the molt ABI: the host never
 * looks this symbol up.
 */
#ifndef MOLT_PLUGINKIT_ENTRY_H
#define MOLT_PLUGINKIT_ENTRY_H

#ifdef __cplusplus
extern "C" {
#endif

/* Defined by the plugin author (see above); returns what PluginKit.export(_:) returned. */
const void *molt_pluginkit_component(void);

#ifdef __cplusplus
}
#endif

#endif /* MOLT_PLUGINKIT_ENTRY_H */
