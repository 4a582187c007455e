// Package dsl loads dtk modules: a folder of HCL files (plus the scripts and
// other assets they use) becomes a checked plan.Module.
//
// Every *.hcl file at the top of the folder is read, in name order; the
// declarations may be spread over several files. Positions in the result and
// in diagnostics name files relative to the folder. Load reports every
// problem it finds as an *Error.
//
// # Language
//
// A module has exactly one module block, any number of components (reusable
// units: typed attributes plus the actions that create and delete them) and
// any number of templates (arrangements of component instances on nodes):
//
//	module {
//	  name        = "hello"        # required, [a-z][a-z0-9_-]*
//	  version     = "1.0.0"        # required, MAJOR.MINOR.PATCH[-prerelease][+build]
//	  description = "A greeting"
//	}
//
//	component "file" {
//	  description = "A file with content"
//	  attribute "path" {
//	    type     = string          # required: an HCL type expression
//	    required = true            # a value must be given
//	  }
//	  attribute "content" {
//	    type    = string
//	    default = "hi"             # a constant, converted to the type
//	  }
//	  attribute "mode" { type = string } # optional: null when not given
//	  create {                     # required
//	    script  = "scripts/create.sh" # a file in the module folder
//	    timeout = "2m"             # optional Go duration
//	  }
//	  delete {                     # optional; inline is the script text
//	    inline = <<-EOT
//	      rm -f "$path"
//	    EOT
//	  }
//	}
//
//	template "site" {
//	  input "greeting" {
//	    type    = string
//	    default = "hello"
//	  }
//	  input "port" { type = number } # no default: the operator must set it
//	  node "web" {
//	    labels = { role = "web" }  # the agent to choose; any agent if empty
//	    component "file" "index" { # component type, instance name
//	      path    = "/tmp/index.html"
//	      content = "${input.greeting} from ${self.hostname}"
//	    }
//	  }
//	  node "db" {
//	    component "file" "conf" {
//	      path    = "/tmp/db.conf"
//	      content = "peer=${node.web.address}"
//	    }
//	  }
//	}
//
// An action's kind names the runner (docs/actions.md has the contract and
// an example of each). Each kind takes its own settings, plus timeout:
//
//   - "bash", the default: script (a file) or inline (script text);
//   - "exec": program ("bin/tool", "./tool.py", an absolute path, or a
//     command on PATH such as "python3") and args (a list of strings);
//   - "puppet": manifest (a .pp file) or class ("mymod::web"), and
//     modulepath (default "modules" when that folder exists);
//   - "ansible": playbook (a file) or role (a folder under roles/);
//   - "container": engine ("podman" or "docker"); the container's settings
//     are the component's attributes (image, env, ports, ...).
//
// Paths are relative to the module folder and must name files (or, for
// modulepath and role, folders) inside it. Component attribute and
// template input names are [a-z][a-z0-9_]*; component, template, node and
// instance names are [a-z][a-z0-9_-]*.
//
// Instance attribute values are HCL expressions, kept as source text for the
// compiler to evaluate once the service's inputs and the chosen agents are
// known. Load only checks what they refer to: input.NAME (an input of the
// template), self.FACT (the facts of the instance's own node) and
// node.NAME.FACT (NAME a node of the template), where FACT is one of Facts;
// component.INST.ATTR and output.INST.NAME (an instance on the same node),
// node.NAME.component.INST.ATTR and node.NAME.output.INST.NAME; node.GROUP
// (a node_group: a list of facts); export.NAME in inject blocks; value in
// validation conditions; and the functions they call (templatefile's file
// must be under templates/).
//
// The language also has required modules (module { requires ... }),
// component outputs, check and custom actions, sensitive values,
// validations, node_group blocks, depends_on, a template's rollout block (how a
// deploy walks through the nodes), and the export and inject
// blocks through which a template customizes the services staged with
// respect to it. docs/dsl.md is the reference of the whole language, with
// an example of every construct.
package dsl
