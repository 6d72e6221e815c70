package cli

import (
	"context"
	"fmt"

	"github.com/spiceroute/spiceroute/hub/auth"
)

func init() {
	Register("token create", "Create an API token (operators only)", tokenCreate)
	Register("token revoke", "Revoke an API token", tokenRevoke)
	Register("whoami", "Show who the API token belongs to", whoami)
}

func tokenCreate(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "token create", "", `
Create an API token for a principal. Only operators may create tokens.
The secret is printed once: the hub stores only its hash.`)
	principal := c.fs.String("principal", "", "who the token is for, e.g. alice (required)")
	role := c.fs.String("role", "", "operator, renter or contributor (required)")
	name := c.fs.String("name", "", "a label for the token, e.g. laptop")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	if *principal == "" || *role == "" {
		return c.usageError("-principal and -role are required")
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		return c.failf("-role: %v", err)
	}
	if err := auth.ValidName(*principal); err != nil {
		return c.failf("-principal: %v", err)
	}
	tok, err := c.client().CreateToken(ctx, *principal, r, *name)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(tok)
	}
	c.kv(
		[2]string{"Principal", tok.Principal},
		[2]string{"Role", string(tok.Role)},
		[2]string{"Name", orDash(tok.Name)},
		[2]string{"Secret", tok.Secret},
	)
	fmt.Fprintln(c.env.Stdout, "\nKeep the secret safe: it is shown only once. Use it as SPICE_TOKEN.")
	return ExitOK
}

func tokenRevoke(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "token revoke", "SECRET | -self", `
Revoke an API token by its secret, or with -self the token this command
uses. Anyone holding a secret may revoke it.`)
	self := c.fs.Bool("self", false, "revoke the token in use (-token or SPICE_TOKEN)")
	pos, rc, ok := c.parse(args, 0, 1)
	if !ok {
		return rc
	}
	if *self == (len(pos) == 1) {
		return c.usageError("give either a SECRET or -self")
	}
	secret := ""
	if len(pos) == 1 {
		secret = pos[0]
	}
	if err := c.client().RevokeToken(ctx, secret); err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(map[string]bool{"revoked": true})
	}
	fmt.Fprintln(c.env.Stdout, "Token revoked")
	return ExitOK
}

func whoami(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "whoami", "", `Show the principal and role of the API token.`)
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	p, err := c.client().Whoami(ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(p)
	}
	fmt.Fprintf(c.env.Stdout, "%s (%s)\n", p.Name, p.Role)
	return ExitOK
}
