import PluginKit
import SwiftTestLockCore

public enum V2: TestLockVersion {
    public static let version = "2.0.0"
    public static let stateFormats: ClosedRange<UInt32> = 1...2
}

@_cdecl("molt_pluginkit_component")
public func moltComponent() -> UnsafeRawPointer { PluginKit.export(TestLock<V2>.self) }
