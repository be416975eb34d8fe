import Runtime

/// runc's command line as its callers write it: global flags, the command, its flags, then its
/// operands. Flags end at the first operand, as runc's parser has them (`exec ID ls -l`), or
/// at `--`. A flag may have any number of leading dashes (`-root`, `--root`) and its value in
/// the next word or after `=`; every flag takes a value but the booleans below. Flags no
/// command reads are accepted and ignored, with their values.
struct RuncCommandLine {
    /// Global flags by name; of a repeated one, the last.
    var globals: [String: String] = [:]
    var command = ""
    /// The command's flags in order (some repeat: exec's `--env`).
    var flags: [(name: String, value: String)] = []
    var operands: [String] = []

    /// Flags that take no value (runc's booleans); given alone, their value is "true".
    static let booleans: Set<String> = ["systemd-cgroup", "debug", "no-pivot", "no-new-keyring", "force", "all", "detach", "tty",
                                        "help", "version", "no-new-privs", "no-subreaper"]
    /// Short names, the same for every command.
    static let aliases = ["b": "bundle", "f": "force", "a": "all", "d": "detach", "t": "tty", "p": "process", "h": "help",
                          "v": "version", "e": "env", "u": "user"]

    init(_ arguments: [String]) {
        var rest = arguments[...]
        var inCommand = false
        while let argument = rest.popFirst() {
            if argument.hasPrefix("-"), argument != "-", operands.isEmpty {
                if argument == "--" {
                    operands += rest
                    break
                }
                var name = String(argument.drop { $0 == "-" })
                var value: String?
                if let equals = name.firstIndex(of: "=") {
                    value = String(name[name.index(after: equals)...])
                    name = String(name[..<equals])
                }
                name = Self.aliases[name] ?? name
                let given = value ?? (Self.booleans.contains(name) ? "true" : (rest.popFirst() ?? ""))
                if inCommand { flags.append((name, given)) } else { globals[name] = given }
            } else if !inCommand {
                command = argument
                inCommand = true
            } else {
                operands.append(argument)
            }
        }
    }

    /// The last value of the command's flag `name`.
    func flag(_ name: String) -> String? { flags.last { $0.name == name }?.value }

    /// The same command line in the one form the command types parse: the command, the global
    /// and command flags that are read as `--name value` (the value taken whatever it looks
    /// like; switches as `--name` when "true"), then `--` and the operands. A global `--version` or `--help` asks for just that.
    /// Throws for a missing or unknown command (`commands`: each command's name and the flags
    /// it reads, in the order a usage line names them).
    func canonicalArguments(commands: [(name: String, flags: RuncFlags)]) throws(HVCError) -> [String] {
        if globals["version"] != nil { return ["--version"] }
        if command.isEmpty, globals["help"] != nil { return ["--help"] }
        let names = commands.map(\.name)
        let known = names.dropLast().joined(separator: ", ") + (names.count > 1 ? " or " : "") + (names.last ?? "")
        guard !command.isEmpty else { throw HVCError(.invalid, "no command: use \(known)") }
        guard let read = commands.first(where: { $0.name == command })?.flags else {
            throw HVCError(.invalid, "unknown command \"\(command)\": use \(known)")
        }
        var words = [command]
        for name in GlobalOptions.flags.values { if let value = globals[name] { words += ["--" + name, value] } }
        if flag("help") != nil { words.append("--help") }
        for name in read.values {
            if let value = flag(name) ?? read.fallbacks[name].flatMap(flag) { words += ["--" + name, value] }
        }
        for name in read.switches where flag(name) == "true" { words.append("--" + name) }
        for flag in flags where read.lists.contains(flag.name) { words += ["--" + flag.name, flag.value] }
        return words + ["--"] + operands
    }
}

/// The flags of one command that hvc-oci reads, by their long names; the command's type
/// declares each as an option or flag of the same name.
struct RuncFlags: Sendable {
    /// Options with one value (the last given).
    var values: [String] = []
    /// Booleans, set when given alone or as `=true`.
    var switches: [String] = []
    /// Options that may repeat, each value kept in order.
    var lists: [String] = []
    /// Another name read for an option when the option itself is not given.
    var fallbacks: [String: String] = [:]
}
