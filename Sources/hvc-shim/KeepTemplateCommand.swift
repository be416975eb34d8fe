import ArgumentParser
import Foundation
import Runtime

/// `hvc-shim keep-template KEY`: holds a template's sealed memory for its clones. Reports
/// `ready` or one error line on stdout (its starter's pipe), then closes it.
struct KeepTemplateCommand: ShimRoleCommand {
    static let configuration = CommandConfiguration(
        commandName: Shim.Role.Name.keepTemplate.rawValue,
        abstract: "Hold a template's sealed memory for its clones while the template lasts.")

    @Argument(help: "The template's key.")
    var key: String

    @OptionGroup var state: StateOptions

    var role: Shim.Role { .keepTemplate(key: key) }

    func run() throws {
        let store = state.runtime().templates
        let held: TemplateKeeper.Held
        do {
            held = try TemplateKeeper.hold(store: store, key: key)
        } catch {
            report(error.reportLine)
            Foundation.exit(1)
        }
        report(TemplateKeeper.readyLine)
        // The starter has its answer: the pipe closes, and nothing is written from here on.
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        dup2(null, 1)
        dup2(null, 2)
        signal(SIGTERM, SIG_DFL)
        TemplateKeeper.keep(held, store: store)
        Foundation.exit(0)
    }

    /// One line on stdout, written at once.
    private func report(_ line: String) {
        var text = Array((line + "\n").utf8)
        _ = text.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
    }
}
