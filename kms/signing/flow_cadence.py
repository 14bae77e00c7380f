"""FLOW transaction templates: the Cadence scripts behind each FLOW pending-transaction type, as data.

Two sets of the same transaction types:

- ``UPSTREAM``: the templates of ``@tatumio/tatum`` 1.37.68 (``transaction/flowTransaction``), byte for byte as its
  ``dedent`` renders them. They use pre-Cadence-1.0 syntax (``AuthAccount``, ``link``, ``addPublicKey``), which Flow
  networks reject since the Cadence 1.0 upgrade (Crescendo, 2024-09-04); kept to reproduce upstream's transactions.
- ``CADENCE_1_0``: the same transactions in Cadence 1.0 syntax (entitlements, ``storage``/``capabilities``/``keys``
  APIs): the default, the only set today's networks accept.

Placeholders are ``string.Template`` names (Cadence never uses ``$``): the contract addresses (from the chain module,
``kms.chains.flow.FLOW_FACTS.contract_addresses``), and for the token transfer ``tokenName``, ``tokenAddress`` and
``tokenStorage``.
"""

from __future__ import annotations

from collections.abc import Mapping

UPSTREAM_SET = "upstream"
CADENCE_1_0_SET = "cadence-1.0"

UPSTREAM: Mapping[str, str] = {
    "create_account": """import FungibleToken from ${FungibleToken}
import FUSD from ${FUSD}
import TatumMultiNFT from ${TatumMultiNFT}
transaction(publicKey: String) {
  let account: AuthAccount
  prepare(signer: AuthAccount) {
    self.account = AuthAccount(payer: signer)
  }
  execute {
    self.account.addPublicKey(publicKey.decodeHex())
    if self.account.borrow<&TatumMultiNFT.Collection>(from: TatumMultiNFT.CollectionStoragePath) == nil {

          // create a new empty collection
          let collection <- TatumMultiNFT.createEmptyCollection()

          // save it to the account
          self.account.save(<-collection, to: TatumMultiNFT.CollectionStoragePath)

          // create a public capability for the collection
          self.account.link<&TatumMultiNFT.Collection>(TatumMultiNFT.CollectionPublicPath, target: TatumMultiNFT.CollectionStoragePath)
      }
    // Add FUSD vault
    self.account.save(<-FUSD.createEmptyVault(), to: /storage/fusdVault)
    self.account.link<&FUSD.Vault{FungibleToken.Receiver}>(
        /public/fusdReceiver,
        target: /storage/fusdVault
    )
    self.account.link<&FUSD.Vault{FungibleToken.Balance}>(
        /public/fusdBalance,
        target: /storage/fusdVault
    )
  }
}""",
    "add_public_key": """transaction(publicKey: String) {
prepare(signer: AuthAccount) {
signer.addPublicKey(publicKey.decodeHex())
}
}""",
    "transfer": """import FungibleToken from ${FungibleToken}
import ${tokenName} from ${tokenAddress}

transaction(amount: UFix64, recipient: Address) {
let sentVault: @FungibleToken.Vault
prepare(signer: AuthAccount) {
  let vaultRef = signer.borrow<&${tokenName}.Vault>(from: /storage/${tokenStorage}Vault)
    ?? panic("failed to borrow reference to sender vault")

  self.sentVault <- vaultRef.withdraw(amount: amount)
}

execute {
  let receiverRef =  getAccount(recipient)
    .getCapability(/public/${tokenStorage}Receiver)
    .borrow<&{FungibleToken.Receiver}>()
      ?? panic("failed to borrow reference to recipient vault")

  receiverRef.deposit(from: <-self.sentVault)
}
}""",
    "mint_nft": """import TatumMultiNFT from ${TatumMultiNFT}

transaction(recipient: Address, url: String, type: String) {

// local variable for storing the minter reference
let minter: &TatumMultiNFT.NFTMinter

prepare(signer: AuthAccount) {

    // borrow a reference to the NFTMinter resource in storage
    self.minter = signer.borrow<&TatumMultiNFT.NFTMinter>(from: TatumMultiNFT.MinterStoragePath)
        ?? panic("Could not borrow a reference to the NFT minter")
}

execute {
    // get the public account object for the recipient
    let recipientAccount = getAccount(recipient)

    // borrow the recipient's public NFT collection reference
    let receiver = recipientAccount
        .getCapability(TatumMultiNFT.CollectionPublicPath)
        .borrow<&TatumMultiNFT.Collection>()
        ?? panic("Could not get receiver reference to the NFT Collection")

    // mint the NFT and deposit it to the recipient's collection
    self.minter.mintNFT(recipient: receiver, type: type, url: url, address: recipient)
}
}""",
    "mint_multiple_nft": """import TatumMultiNFT from ${TatumMultiNFT}

transaction(recipient: [Address], url: [String], type: String) {

// local variable for storing the minter reference
let minter: &TatumMultiNFT.NFTMinter

prepare(signer: AuthAccount) {

    // borrow a reference to the NFTMinter resource in storage
    self.minter = signer.borrow<&TatumMultiNFT.NFTMinter>(from: TatumMultiNFT.MinterStoragePath)
        ?? panic("Could not borrow a reference to the NFT minter")
}

execute {
    var a = 0;
    while a < url.length {
    // get the public account object for the recipient
    let recipientAccount = getAccount(recipient[a])

    // borrow the recipient's public NFT collection reference
    let receiver = recipientAccount
        .getCapability(TatumMultiNFT.CollectionPublicPath)
        .borrow<&TatumMultiNFT.Collection>()
        ?? panic("Could not get receiver reference to the NFT Collection")

    // mint the NFT and deposit it to the recipient's collection
        self.minter.mintNFT(recipient: receiver, type: type, url: url[a], address: recipient[a])
        a = a + 1
    }
}
}""",
    "burn_nft": """import TatumMultiNFT from ${TatumMultiNFT}

transaction(withdrawID: UInt64, type: String) {

// local variable for storing the minter reference
let senderCollection: &TatumMultiNFT.Collection

prepare(signer: AuthAccount) {

    // borrow a reference to the signer's NFT collection
    self.senderCollection = signer.borrow<&TatumMultiNFT.Collection>(from: TatumMultiNFT.CollectionStoragePath)
        ?? panic("Could not borrow a reference to the owner's collection")

    // check if token has correct type
    self.senderCollection.borrowTatumNFT(id: withdrawID, type: type)
}

execute {
    // withdraw the NFT from the owner's collection
    let nft <- self.senderCollection.withdraw(withdrawID: withdrawID)

    // Destroy the nft
    destroy nft
}
}""",
    "transfer_nft": """import TatumMultiNFT from ${TatumMultiNFT}

transaction(recipient: Address, withdrawID: UInt64) {

// local variable for storing the minter reference
let senderCollection: &TatumMultiNFT.Collection

prepare(signer: AuthAccount) {

    // borrow a reference to the signer's NFT collection
    self.senderCollection = signer.borrow<&TatumMultiNFT.Collection>(from: TatumMultiNFT.CollectionStoragePath)
        ?? panic("Could not borrow a reference to the owner's collection")

}

execute {
    // get the recipients public account object
    let recipient = getAccount(recipient)

    // borrow a public reference to the receivers collection
    let depositRef = recipient.getCapability(TatumMultiNFT.CollectionPublicPath).borrow<&TatumMultiNFT.Collection>()!

    // withdraw the NFT from the owner's collection
    let nft <- self.senderCollection.withdraw(withdrawID: withdrawID)

    // Deposit the NFT in the recipient's collection
    depositRef.deposit(token: <-nft)
}
}""",
}

CADENCE_1_0: Mapping[str, str] = {
    "create_account": """transaction(publicKey: String) {
    prepare(signer: auth(BorrowValue) &Account) {
        let account = Account(payer: signer)
        account.keys.add(
            publicKey: PublicKey(
                publicKey: publicKey.decodeHex(),
                signatureAlgorithm: SignatureAlgorithm.ECDSA_secp256k1
            ),
            hashAlgorithm: HashAlgorithm.SHA3_256,
            weight: 1000.0
        )
    }
}
""",
    "add_public_key": """transaction(publicKey: String, weight: UFix64) {
    prepare(signer: auth(AddKey) &Account) {
        signer.keys.add(
            publicKey: PublicKey(
                publicKey: publicKey.decodeHex(),
                signatureAlgorithm: SignatureAlgorithm.ECDSA_secp256k1
            ),
            hashAlgorithm: HashAlgorithm.SHA3_256,
            weight: weight
        )
    }
}
""",
    "transfer": """import FungibleToken from ${FungibleToken}
import ${tokenName} from ${tokenAddress}

transaction(amount: UFix64, recipient: Address) {
    let sentVault: @{FungibleToken.Vault}

    prepare(signer: auth(BorrowValue) &Account) {
        let vaultRef = signer.storage.borrow<auth(FungibleToken.Withdraw) &${tokenName}.Vault>(
            from: /storage/${tokenStorage}Vault
        ) ?? panic("failed to borrow reference to sender vault")
        self.sentVault <- vaultRef.withdraw(amount: amount)
    }

    execute {
        let receiverRef = getAccount(recipient)
            .capabilities.borrow<&{FungibleToken.Receiver}>(/public/${tokenStorage}Receiver)
            ?? panic("failed to borrow reference to recipient vault")
        receiverRef.deposit(from: <-self.sentVault)
    }
}
""",
    "mint_nft": """import TatumMultiNFT from ${TatumMultiNFT}

transaction(recipient: Address, url: String, type: String) {
    let minter: &TatumMultiNFT.NFTMinter

    prepare(signer: auth(BorrowValue) &Account) {
        self.minter = signer.storage.borrow<&TatumMultiNFT.NFTMinter>(from: TatumMultiNFT.MinterStoragePath)
            ?? panic("Could not borrow a reference to the NFT minter")
    }

    execute {
        let receiver = getAccount(recipient)
            .capabilities.borrow<&TatumMultiNFT.Collection>(TatumMultiNFT.CollectionPublicPath)
            ?? panic("Could not get receiver reference to the NFT Collection")
        self.minter.mintNFT(recipient: receiver, type: type, url: url, address: recipient)
    }
}
""",
    "mint_multiple_nft": """import TatumMultiNFT from ${TatumMultiNFT}

transaction(recipient: [Address], url: [String], type: String) {
    let minter: &TatumMultiNFT.NFTMinter

    prepare(signer: auth(BorrowValue) &Account) {
        self.minter = signer.storage.borrow<&TatumMultiNFT.NFTMinter>(from: TatumMultiNFT.MinterStoragePath)
            ?? panic("Could not borrow a reference to the NFT minter")
    }

    execute {
        var a = 0
        while a < url.length {
            let receiver = getAccount(recipient[a])
                .capabilities.borrow<&TatumMultiNFT.Collection>(TatumMultiNFT.CollectionPublicPath)
                ?? panic("Could not get receiver reference to the NFT Collection")
            self.minter.mintNFT(recipient: receiver, type: type, url: url[a], address: recipient[a])
            a = a + 1
        }
    }
}
""",
    "burn_nft": """import NonFungibleToken from ${NonFungibleToken}
import TatumMultiNFT from ${TatumMultiNFT}

transaction(withdrawID: UInt64, type: String) {
    let senderCollection: auth(NonFungibleToken.Withdraw) &TatumMultiNFT.Collection

    prepare(signer: auth(BorrowValue) &Account) {
        self.senderCollection = signer.storage.borrow<auth(NonFungibleToken.Withdraw) &TatumMultiNFT.Collection>(
            from: TatumMultiNFT.CollectionStoragePath
        ) ?? panic("Could not borrow a reference to the owner's collection")
        self.senderCollection.borrowTatumNFT(id: withdrawID, type: type)
    }

    execute {
        let nft <- self.senderCollection.withdraw(withdrawID: withdrawID)
        destroy nft
    }
}
""",
    "transfer_nft": """import NonFungibleToken from ${NonFungibleToken}
import TatumMultiNFT from ${TatumMultiNFT}

transaction(recipient: Address, withdrawID: UInt64) {
    let senderCollection: auth(NonFungibleToken.Withdraw) &TatumMultiNFT.Collection

    prepare(signer: auth(BorrowValue) &Account) {
        self.senderCollection = signer.storage.borrow<auth(NonFungibleToken.Withdraw) &TatumMultiNFT.Collection>(
            from: TatumMultiNFT.CollectionStoragePath
        ) ?? panic("Could not borrow a reference to the owner's collection")
    }

    execute {
        let depositRef = getAccount(recipient)
            .capabilities.borrow<&{NonFungibleToken.Receiver}>(TatumMultiNFT.CollectionPublicPath)
            ?? panic("Could not borrow a reference to the recipient's collection")
        let nft <- self.senderCollection.withdraw(withdrawID: withdrawID)
        depositRef.deposit(token: <-nft)
    }
}
""",
}

TEMPLATE_SETS: Mapping[str, Mapping[str, str]] = {UPSTREAM_SET: UPSTREAM, CADENCE_1_0_SET: CADENCE_1_0}
