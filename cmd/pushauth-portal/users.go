package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// user is a demo account of the portal.
type user struct {
	Username string `yaml:"username"`
	Name     string `yaml:"name"`
	// Email labels the account in the app ("jan@example.nl").
	Email string `yaml:"email"`
	// PasswordHash is bcrypt ("pushauth-portal hash-password" makes one).
	PasswordHash string `yaml:"password_hash"`
}

// label is how the phone and the authenticator app name the account.
func (u *user) label() string {
	if u.Email != "" {
		return u.Email
	}
	return u.Username
}

// users are the portal's accounts by username.
type users map[string]*user

// dummyHash is compared against when the username is unknown, so that a
// wrong username takes as long as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)

// check returns the user when the password is theirs.
func (us users) check(username, password string) (*user, bool) {
	u, ok := us[strings.ToLower(strings.TrimSpace(username))]
	hash := dummyHash
	if ok {
		hash = []byte(u.PasswordHash)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !ok {
		return nil, false
	}
	return u, true
}

// loadUsers reads a YAML file: users: [{username, name, email, password_hash}].
func loadUsers(path string) (users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Users []*user `yaml:"users"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	us := users{}
	for i, u := range doc.Users {
		if err := us.add(u); err != nil {
			return nil, fmt.Errorf("%s: user %d: %w", path, i+1, err)
		}
	}
	return us, nil
}

// addFlag adds a --user NAME:PASSWORD (demo only: the password is hashed
// at once and forgotten).
func (us users) addFlag(s string) error {
	name, password, ok := strings.Cut(s, ":")
	if !ok || name == "" || password == "" {
		return errors.New("--user must be NAME:PASSWORD")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	return us.add(&user{Username: name, Name: name, PasswordHash: string(hash)})
}

func (us users) add(u *user) error {
	u.Username = strings.ToLower(strings.TrimSpace(u.Username))
	switch {
	case u.Username == "":
		return errors.New("username is empty")
	case us[u.Username] != nil:
		return fmt.Errorf("username %q twice", u.Username)
	case !strings.HasPrefix(u.PasswordHash, "$2"):
		return fmt.Errorf("user %q: password_hash is not a bcrypt hash", u.Username)
	}
	if u.Name == "" {
		u.Name = u.Username
	}
	us[u.Username] = u
	return nil
}
