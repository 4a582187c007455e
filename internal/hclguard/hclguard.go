// Package hclguard refuses HCL text nested so deeply that parsing it would
// exhaust the goroutine stack.
//
// The HCL parser is recursive descent: every parenthesis, bracket, brace,
// template interpolation or directive, function call, unary operator and
// chained conditional costs it a few stack frames, and binary operators,
// index and attribute steps build a tree as deep as the chain is long,
// which later walks recurse through. A few hundred thousand of them in an
// attribute overflow the stack, and Go ends the process with "fatal error:
// stack overflow", which no recover catches. Every parse of text that
// somebody else wrote (module files, ACL rules, the agent configuration)
// calls Config or Template first.
//
// The check runs the HCL scanner, which keeps its state in a slice rather
// than on the stack, and counts on its tokens, so strings, heredocs and
// comments are told apart exactly as the parser will see them.
package hclguard

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// MaxDepth bounds how deep expressions may nest: open ( [ { ${ %{, open
// %{if} and %{for} directives, chained conditionals (a ? b : c ? d : e) and
// runs of unary operators (!!x, - -x), all counted together.
const MaxDepth = 64

// MaxChain bounds how many binary operators, index and attribute steps one
// expression may chain (a + b + c, a[b][c], a.b.c).
const MaxChain = 10000

// Limits bound one check. The zero value is MaxDepth and MaxChain.
type Limits struct {
	// Depth replaces MaxDepth when it is positive.
	Depth int
	// Setting names the configuration key that sets Depth (such as
	// "limits.nesting_depth"); a refusal then says to raise it.
	Setting string
}

func (l Limits) depth() int {
	if l.Depth > 0 {
		return l.Depth
	}
	return MaxDepth
}

// Config checks src, the text of an HCL configuration file, before
// hclsyntax.ParseConfig. It returns one error diagnostic at the place the
// limit is passed, or nothing.
func Config(src []byte, filename string, start hcl.Pos) hcl.Diagnostics {
	return Limits{}.Config(src, filename, start)
}

// Template checks src, the text of a template file, before
// hclsyntax.ParseTemplate.
func Template(src []byte, filename string, start hcl.Pos) hcl.Diagnostics {
	return Limits{}.Template(src, filename, start)
}

// Expression checks src, the text of one expression, before
// hclsyntax.ParseExpression.
func Expression(src []byte, filename string, start hcl.Pos) hcl.Diagnostics {
	return Limits{}.Expression(src, filename, start)
}

// Config is the package's Config within l.
func (l Limits) Config(src []byte, filename string, start hcl.Pos) hcl.Diagnostics {
	toks, _ := hclsyntax.LexConfig(src, filename, start)
	return l.check(toks)
}

// Template is the package's Template within l.
func (l Limits) Template(src []byte, filename string, start hcl.Pos) hcl.Diagnostics {
	toks, _ := hclsyntax.LexTemplate(src, filename, start)
	return l.check(toks)
}

// Expression is the package's Expression within l.
func (l Limits) Expression(src []byte, filename string, start hcl.Pos) hcl.Diagnostics {
	toks, _ := hclsyntax.LexExpression(src, filename, start)
	return l.check(toks)
}

// frame is one open ( [ { ${ or %{, or the file itself (open 0).
type frame struct {
	open    hclsyntax.TokenType
	ternary int // conditionals chained in the current item
	chain   int // operators chained in the current item
}

func (l Limits) check(toks hclsyntax.Tokens) hcl.Diagnostics {
	maxDepth := l.depth()
	stack := []frame{{}}
	depth := 0      // open frames and chained conditionals
	directives := 0 // open %{if} and %{for}, an upper bound of the parser's
	unary := 0      // unary operators in a row
	operand := false
	control := false
	for i := range toks {
		tok := &toks[i]
		top := &stack[len(stack)-1]
		isUnary := false
		switch tok.Type {
		case hclsyntax.TokenOParen, hclsyntax.TokenOBrack, hclsyntax.TokenOBrace,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			if tok.Type == hclsyntax.TokenOBrack && operand {
				top.chain++ // a[i]
			}
			stack = append(stack, frame{open: tok.Type})
			depth++
		case hclsyntax.TokenCParen, hclsyntax.TokenCBrack, hclsyntax.TokenCBrace, hclsyntax.TokenTemplateSeqEnd:
			// A closer that does not match is a syntax error; keeping the
			// frame open only overcounts.
			if len(stack) > 1 && closes(top.open, tok.Type) {
				depth -= 1 + top.ternary
				stack = stack[:len(stack)-1]
			}
		case hclsyntax.TokenQuestion:
			top.ternary++
			depth++
		case hclsyntax.TokenComma:
			depth -= top.ternary
			top.ternary, top.chain = 0, 0
		case hclsyntax.TokenNewline:
			// Newlines end an item only in a body or an object; in ( [ and
			// interpolations the parser skips them.
			if top.open == 0 || top.open == hclsyntax.TokenOBrace {
				depth -= top.ternary
				top.ternary, top.chain = 0, 0
			}
			isUnary = true // keeps a run going; overcounts at worst
		case hclsyntax.TokenComment:
			isUnary = true
		case hclsyntax.TokenMinus:
			if operand {
				top.chain++
			} else {
				unary++
				isUnary = true
			}
		case hclsyntax.TokenBang:
			unary++
			isUnary = true
		case hclsyntax.TokenPlus, hclsyntax.TokenStar, hclsyntax.TokenSlash, hclsyntax.TokenPercent,
			hclsyntax.TokenEqualOp, hclsyntax.TokenNotEqual, hclsyntax.TokenLessThan, hclsyntax.TokenLessThanEq,
			hclsyntax.TokenGreaterThan, hclsyntax.TokenGreaterThanEq, hclsyntax.TokenAnd, hclsyntax.TokenOr,
			hclsyntax.TokenDot:
			top.chain++
		case hclsyntax.TokenIdent:
			if control {
				switch string(tok.Bytes) {
				case "if", "for":
					directives++
				case "endif", "endfor":
					if directives > 0 {
						directives--
					}
				}
			}
		}
		if !isUnary {
			unary = 0
		}
		if depth+directives+unary > maxDepth {
			summary := fmt.Sprintf("expressions nest deeper than %d levels", maxDepth)
			detail := "the parser recurses once per level and would run out of stack; name the inner parts with locals or variables"
			if l.Setting != "" {
				summary += " (" + l.Setting + ")"
				detail += ", or raise " + l.Setting + " in the coordinator config"
			}
			return refuse(tok, summary, detail)
		}
		if top := &stack[len(stack)-1]; top.chain > MaxChain {
			return refuse(tok, fmt.Sprintf("an expression chains more than %d operators", MaxChain),
				"evaluating it recurses once per operator and would run out of stack; split it into several values")
		}
		switch tok.Type {
		case hclsyntax.TokenNewline, hclsyntax.TokenComment:
		default:
			operand = endsOperand(tok.Type)
		}
		control = tok.Type == hclsyntax.TokenTemplateControl
	}
	return nil
}

func closes(open, close hclsyntax.TokenType) bool {
	switch close {
	case hclsyntax.TokenCParen:
		return open == hclsyntax.TokenOParen
	case hclsyntax.TokenCBrack:
		return open == hclsyntax.TokenOBrack
	case hclsyntax.TokenCBrace:
		return open == hclsyntax.TokenOBrace
	case hclsyntax.TokenTemplateSeqEnd:
		return open == hclsyntax.TokenTemplateInterp || open == hclsyntax.TokenTemplateControl
	}
	return false
}

func endsOperand(t hclsyntax.TokenType) bool {
	switch t {
	case hclsyntax.TokenIdent, hclsyntax.TokenNumberLit, hclsyntax.TokenCParen, hclsyntax.TokenCBrack,
		hclsyntax.TokenCBrace, hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc, hclsyntax.TokenStar:
		return true
	}
	return false
}

func refuse(tok *hclsyntax.Token, summary, detail string) hcl.Diagnostics {
	rng := tok.Range
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  &rng,
	}}
}
