// Which files `molt plugin new` writes for a (kind, language): the one place that maps the pair to its
// templates (CLockTemplate, CStateTemplate, SwiftLockTemplate, SwiftStateTemplate, and the project files
// they share) and fills in their placeholders.

/// A project ready to be written: relative paths and their full text, plus the commands to run next.
struct PluginProjectTemplate {
    enum Kind: String, CaseIterable { case lock, state }
    enum Language: String, CaseIterable { case c, swift }

    var files: [(path: String, text: String)]
    /// "Next:" lines printed after the files are written, `{DIR}` standing for the project directory.
    var next: [String]

    /// The project of `kind` in `language` for plugin `name` (already checked against the loader's rule).
    /// `pluginKit` is the absolute path of PluginKit, used by Swift projects only.
    init(kind: Kind, language: Language, name: String, pluginKit: String?) {
        switch language {
        case .c:
            let (source, test, readme) = switch kind {
            case .lock: (CLockTemplate.source, CLockTemplate.test, CLockTemplate.readme)
            case .state: (CStateTemplate.source, CStateTemplate.test, CStateTemplate.readme)
            }
            files = [
                ("\(name).c", source),
                ("Makefile", CTemplateMakefile.makefile),
                ("README.md", readme),
                ("test/test_plugin.c", test),
                ("include/molt_plugin.h", embeddedPluginHeader),
            ]
            next = [
                "make -C {DIR}                # \(name)-1.0.0.so",
                "make -C {DIR} VERSION=1.1.0  # \(name)-1.1.0.so, same source",
                "make -C {DIR} test           # load it and check its semantics and state transfer",
                "make -C {DIR} install PLUGINS_DIR=/path/to/plugins.d",
            ]
        case .swift:
            let module = Self.swiftModuleName(name)
            let (source, test, readme, product) = switch kind {
            case .lock: (SwiftLockTemplate.source, CLockTemplate.test, SwiftLockTemplate.readme, "PluginKitLock")
            case .state: (SwiftStateTemplate.source, CStateTemplate.test, SwiftStateTemplate.readme, "PluginKitState")
            }
            files = [
                ("Package.swift", SwiftTemplateProject.package),
                ("Sources/\(module)/\(module).swift", source),
            ]
            files += SwiftTemplateProject.versions.map { target, version in
                ("Sources/\(module)\(target)/\(module)\(target).swift",
                 SwiftTemplateProject.versionTarget.replacing("__VERSION_TYPE__", with: target).replacing("__VERSION__", with: version))
            }
            files += [
                ("Makefile", SwiftTemplateProject.makefile),
                ("README.md", readme),
                (".gitignore", SwiftTemplateProject.gitignore),
                ("test/test_plugin.c", test),
                ("include/molt_plugin.h", embeddedPluginHeader),
            ]
            files = files.map { ($0.path, $0.text.replacing("__MODULE__", with: module)
                                    .replacing("__KIND_PRODUCT__", with: product)
                                    .replacing("__KIND__", with: kind.rawValue)
                                    .replacing("__PLUGINKIT_PATH__", with: pluginKit ?? "")) }
            let staged = SwiftTemplateProject.versions.map { "\(name)-\($0.version).so" }.joined(separator: ", ")
            next = [
                "make -C {DIR}                # swift build; \(staged)",
                "make -C {DIR} test           # load each and check its semantics and state transfer",
                "make -C {DIR} install PLUGINS_DIR=/path/to/plugins.d",
            ]
        }
        // Raw strings end without their last newline. (The header holds no placeholder: it stays byte for byte.)
        files = files.map { ($0.path, $0.text.replacing("__PLUGIN_NAME__", with: name) + "\n") }
    }

    /// The Swift module (and component class) name for a plugin name: its parts between '-', '.' and '_',
    /// capitalized and joined ("demo-lock" -> "DemoLock"); "Plugin" is prefixed when it would start with a
    /// digit, and appended when it would be a module the package already imports (PluginKit..., Swift...).
    static func swiftModuleName(_ name: String) -> String {
        let parts = name.split(whereSeparator: { "-._".contains($0) })
        var module = parts.map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        if module.first?.isNumber ?? true { module = "Plugin" + module }
        let taken = ["PluginABI", "Swift", "Synchronization", "Glibc", "Foundation", "FoundationEssentials", "Dispatch"]
        if module.hasPrefix("PluginKit") || taken.contains(module) { module += "Plugin" }
        return module
    }
}
